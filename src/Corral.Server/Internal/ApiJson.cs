using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Serialization;
using Corral.Server.Api;

namespace Corral.Server.Internal;

/// <summary>The one JSON shape of the API: camelCase, enums as camelCase strings, nulls left out.</summary>
internal static class ApiJson
{
    /// <summary>
    /// What the server writes and reads back: records, events, pages, webhook bodies. Twice the depth requests are read
    /// with, so a record made of a request (its metadata) still fits in the envelopes it is served in.
    /// </summary>
    public static JsonSerializerOptions Options { get; } = Configure(new JsonSerializerOptions(JsonSerializerDefaults.Web) { MaxDepth = 128 });

    /// <summary>
    /// Request bodies: unknown fields (a name in another case, too), duplicate fields and numbers in strings
    /// (<c>"Infinity"</c>, <c>"5"</c>) are errors, so a typo or an ambiguity is never silently read one way.
    /// </summary>
    public static JsonSerializerOptions Strict { get; } = new(Options)
    {
        PropertyNameCaseInsensitive = false,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        AllowDuplicateProperties = false,
        NumberHandling = JsonNumberHandling.Strict,
        MaxDepth = 64,
    };

    private static readonly ConditionalWeakTable<TaskRecord, byte[]> s_records = new();

    /// <summary>
    /// A record in the API's JSON (UTF-8), made once however many places write it: a task's final record goes to its
    /// journal, its row and the waiting client. Records are immutable, so the bytes stay true for the instance.
    /// Callers must not change the array.
    /// </summary>
    public static byte[] Utf8(TaskRecord record) => s_records.GetValue(record, static r => JsonSerializer.SerializeToUtf8Bytes(r, Options));

    /// <summary><see cref="Utf8"/> as a string, for a database column.</summary>
    public static string Text(TaskRecord record) => System.Text.Encoding.UTF8.GetString(Utf8(record));

    /// <summary>A record stored as <see cref="Text"/>.</summary>
    public static TaskRecord Record(string json) => JsonSerializer.Deserialize<TaskRecord>(json, Options)!;

    /// <summary>A status as the API spells it (<c>succeeded</c>), for a database column.</summary>
    public static string Name(TaskState state) => JsonNamingPolicy.CamelCase.ConvertName(state.ToString());

    public static JsonSerializerOptions Configure(JsonSerializerOptions options)
    {
        options.PropertyNamingPolicy = JsonNamingPolicy.CamelCase;
        options.DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull;
        options.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.CamelCase));
        return options;
    }
}

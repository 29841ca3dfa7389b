using System.Text.Json;
using System.Text.Json.Serialization;

namespace Corral.Server.Internal;

/// <summary>The one JSON shape of the API: camelCase, enums as camelCase strings, nulls left out.</summary>
internal static class ApiJson
{
    public static JsonSerializerOptions Options { get; } = Configure(new JsonSerializerOptions(JsonSerializerDefaults.Web));

    /// <summary>
    /// Request bodies: unknown fields, duplicate fields and numbers in strings (<c>"Infinity"</c>, <c>"5"</c>) are errors,
    /// so a typo or an ambiguity is never silently read one way.
    /// </summary>
    public static JsonSerializerOptions Strict { get; } = new(Options)
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        AllowDuplicateProperties = false,
        NumberHandling = JsonNumberHandling.Strict,
    };

    public static JsonSerializerOptions Configure(JsonSerializerOptions options)
    {
        options.PropertyNamingPolicy = JsonNamingPolicy.CamelCase;
        options.DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull;
        options.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.CamelCase));
        return options;
    }
}

using System.Text.Json;
using System.Text.Json.Serialization;

namespace Corral.Client.Internal;

/// <summary>The API's JSON: camelCase, nulls not sent, unknown fields ignored, statuses a newer server adds read as <see cref="CorralTaskStatus.Unknown"/>.</summary>
internal static class ClientJson
{
    public static JsonSerializerOptions Options { get; } = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Converters = { new StatusConverter() },
    };

    /// <summary>A record from its JSON, with <see cref="CorralTask.Raw"/> set to that JSON.</summary>
    public static CorralTask ReadTask(JsonElement element) =>
        element.Deserialize<CorralTask>(Options)! with { Raw = element.Clone() };

    /// <summary>The wire name of a status (<c>timedOut</c>).</summary>
    public static string Name(CorralTaskStatus status) => JsonNamingPolicy.CamelCase.ConvertName(status.ToString());

    private sealed class StatusConverter : JsonConverter<CorralTaskStatus>
    {
        public override CorralTaskStatus Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
            reader.TokenType == JsonTokenType.String && Enum.TryParse(reader.GetString(), ignoreCase: true, out CorralTaskStatus status)
                && Enum.IsDefined(status) && !char.IsDigit(reader.GetString()![0])
                ? status
                : CorralTaskStatus.Unknown;

        public override void Write(Utf8JsonWriter writer, CorralTaskStatus value, JsonSerializerOptions options) =>
            writer.WriteStringValue(Name(value));
    }
}

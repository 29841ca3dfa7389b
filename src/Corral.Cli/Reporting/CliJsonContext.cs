using System.Text.Json;
using System.Text.Json.Serialization;
using Corral.Processes;

namespace Corral.Cli.Reporting;

/// <summary>Source-generated JSON for everything the CLI prints or writes: no reflection, trimming-safe.</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    WriteIndented = true,
    DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    Converters =
    [
        typeof(CamelCaseEnumConverter<ExitReason>),
        typeof(CamelCaseEnumConverter<ContainmentKind>),
        typeof(CamelCaseEnumConverter<FoundBy>),
        typeof(StreamNameConverter),
    ])]
[JsonSerializable(typeof(RunReport))]
[JsonSerializable(typeof(IReadOnlyList<HolderEntry>))]
internal sealed partial class CliJsonContext : JsonSerializerContext
{
    /// <summary>
    /// Like <see cref="Default"/>, but leaves characters such as <c>&amp;</c>, <c>&gt;</c> and non-ASCII letters
    /// unescaped, so command lines read as typed. The output is a file or a terminal, never HTML.
    /// </summary>
    public static CliJsonContext Readable => s_readable ??= new(new JsonSerializerOptions(Default.Options)
    {
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });

    // Not a static initializer: the generated Default is initialized after it.
    private static CliJsonContext? s_readable;
}

/// <summary>Enum values as camelCase strings ("timedOut", "processGroup"), so the JSON does not depend on numeric values.</summary>
internal sealed class CamelCaseEnumConverter<TEnum>() : JsonStringEnumConverter<TEnum>(JsonNamingPolicy.CamelCase, allowIntegerValues: false)
    where TEnum : struct, Enum;

/// <summary>Streams by the names people use: "stdout" and "stderr".</summary>
internal sealed class StreamNameConverter : JsonConverter<OutputStream>
{
    public static string Name(OutputStream stream) => stream == OutputStream.StandardError ? "stderr" : "stdout";

    public override OutputStream Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.GetString() switch
        {
            "stdout" => OutputStream.StandardOutput,
            "stderr" => OutputStream.StandardError,
            var other => throw new JsonException($"Unknown stream '{other}'."),
        };

    public override void Write(Utf8JsonWriter writer, OutputStream value, JsonSerializerOptions options) =>
        writer.WriteStringValue(Name(value));
}

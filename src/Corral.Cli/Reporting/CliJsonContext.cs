using System.Text.Json;
using System.Text.Json.Serialization;
using Corral.Processes;

namespace Corral.Cli.Reporting;

/// <summary>JSON the CLI prints or writes: source-generated for <c>holders --json</c>; the run report through <see cref="Report"/>.</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    WriteIndented = true,
    DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    Converters =
    [
        typeof(StreamNameConverter),
    ])]
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

    /// <summary>
    /// The report: <see cref="ProcessOutcome"/> in its own JSON shape (the one the server's task record uses too).
    /// Reflection-based, because that shape's millisecond converter is internal to Corral.Processes.
    /// </summary>
    public static JsonSerializerOptions Report { get; } = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase, allowIntegerValues: false) },
    };

    // Not a static initializer: the generated Default is initialized after it.
    private static CliJsonContext? s_readable;
}

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

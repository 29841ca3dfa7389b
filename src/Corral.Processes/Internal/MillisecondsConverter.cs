using System.Text.Json;
using System.Text.Json.Serialization;

namespace Corral.Processes.Internal;

/// <summary>A <see cref="TimeSpan"/> as a number of milliseconds, to the microsecond: drain times are often well under 1 ms.</summary>
internal sealed class MillisecondsConverter : JsonConverter<TimeSpan>
{
    public override TimeSpan Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        TimeSpan.FromMilliseconds(reader.GetDouble());

    public override void Write(Utf8JsonWriter writer, TimeSpan value, JsonSerializerOptions options) =>
        writer.WriteNumberValue(Math.Round(value.TotalMilliseconds, 3));
}

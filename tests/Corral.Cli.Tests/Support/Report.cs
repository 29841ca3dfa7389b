using System.Text.Json;

namespace Corral.Cli.Tests.Support;

internal static class Report
{
    /// <summary>The root element of a report file corral wrote.</summary>
    public static JsonElement Load(string path)
    {
        Assert.True(File.Exists(path), $"no report at {path}");
        using var document = JsonDocument.Parse(File.ReadAllBytes(path));
        return document.RootElement.Clone();
    }
}

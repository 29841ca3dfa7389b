namespace Corral.Cli.Tests;

/// <summary>The duration syntax of <c>--timeout</c> and <c>--grace</c>, tested in-process.</summary>
public sealed class DurationTests
{
    [Theory]
    [InlineData("30s", 30_000)]
    [InlineData("500ms", 500)]
    [InlineData("2m", 120_000)]
    [InlineData("1h", 3_600_000)]
    [InlineData("30", 30_000)]
    [InlineData("1.5", 1_500)]
    [InlineData("0.25s", 250)]
    [InlineData("0", 0)]
    [InlineData(" 10S ", 10_000)]
    public void Parses(string text, double milliseconds)
    {
        Assert.True(Duration.TryParse(text, out var value, out string? error), error);
        Assert.Equal(TimeSpan.FromMilliseconds(milliseconds), value);
    }

    [Theory]
    [InlineData("")]
    [InlineData("abc")]
    [InlineData("s")]
    [InlineData("-1s")]
    [InlineData("1d")]
    [InlineData("10 s")]
    [InlineData("1e3")]
    [InlineData("NaN")]
    [InlineData("99999999h")]
    [InlineData(null)]
    public void Rejects_with_a_message(string? text)
    {
        Assert.False(Duration.TryParse(text, out _, out string? error));
        Assert.False(string.IsNullOrWhiteSpace(error));
    }
}

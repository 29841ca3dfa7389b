namespace Corral.Cli.Tests;

/// <summary>The size syntax of <c>--memory-max</c>, tested in-process.</summary>
public sealed class ByteSizeTests
{
    [Theory]
    [InlineData("64M", 64L << 20)]
    [InlineData("2G", 2L << 30)]
    [InlineData("512k", 512L << 10)]
    [InlineData("1.5G", 3L << 29)]
    [InlineData("64MiB", 64L << 20)]
    [InlineData("64MB", 64L << 20)]
    [InlineData("1T", 1L << 40)]
    [InlineData("4096", 4096)]
    [InlineData(" 8m ", 8L << 20)]
    public void Parses(string text, long bytes)
    {
        Assert.True(ByteSize.TryParse(text, out long value, out string? error), error);
        Assert.Equal(bytes, value);
    }

    [Theory]
    [InlineData("")]
    [InlineData("M")]
    [InlineData("0")]
    [InlineData("-1G")]
    [InlineData("1P")]
    [InlineData("1e9")]
    [InlineData("10 M")]
    [InlineData("99999999999T")]
    [InlineData(null)]
    public void Rejects_with_a_message(string? text)
    {
        Assert.False(ByteSize.TryParse(text, out _, out string? error));
        Assert.False(string.IsNullOrWhiteSpace(error));
    }
}

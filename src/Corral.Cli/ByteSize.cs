using System.Globalization;

namespace Corral.Cli;

/// <summary>Parses the sizes the command line accepts: <c>64M</c>, <c>2G</c>, <c>512K</c>, <c>1.5G</c>, or plain bytes (binary units: 1K = 1024).</summary>
internal static class ByteSize
{
    private static readonly (string Suffix, long Bytes)[] Units =
    [
        ("K", 1L << 10),
        ("M", 1L << 20),
        ("G", 1L << 30),
        ("T", 1L << 40),
    ];

    /// <summary>Parses <paramref name="text"/>; on failure <paramref name="error"/> says why, in words fit for the user.</summary>
    public static bool TryParse(string? text, out long value, out string? error)
    {
        value = 0;
        error = null;
        string s = text?.Trim() ?? "";
        // "64MiB" and "64MB" mean what "64M" means.
        if (s.EndsWith("iB", StringComparison.OrdinalIgnoreCase))
            s = s[..^2];
        else if (s.Length > 1 && s.EndsWith('B') && !char.IsAsciiDigit(s[^2]))
            s = s[..^1];

        long unit = 1;
        foreach (var (suffix, bytes) in Units)
        {
            if (s.EndsWith(suffix, StringComparison.OrdinalIgnoreCase))
            {
                unit = bytes;
                s = s[..^1];
                break;
            }
        }

        if (s.Length == 0 || !(char.IsAsciiDigit(s[0]) || s[0] == '.')
            || !double.TryParse(s, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double amount))
        {
            error = $"'{text}' is not a size; use e.g. 64M, 2G, 512K or a number of bytes";
            return false;
        }

        double total = Math.Round(amount * unit);
        if (total < 1 || total > long.MaxValue / 2)
        {
            error = $"'{text}' is out of range";
            return false;
        }

        value = (long)total;
        return true;
    }
}

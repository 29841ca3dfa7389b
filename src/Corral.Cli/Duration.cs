using System.Globalization;

namespace Corral.Cli;

/// <summary>Parses the durations the command line accepts: <c>500ms</c>, <c>30s</c>, <c>2m</c>, <c>1h</c>, or plain seconds (<c>30</c>, <c>1.5</c>).</summary>
internal static class Duration
{
    /// <summary>The longest accepted duration: timers in .NET take at most int.MaxValue milliseconds (about 24.8 days).</summary>
    public static readonly TimeSpan Max = TimeSpan.FromMilliseconds(int.MaxValue);

    private static readonly (string Suffix, double Milliseconds)[] Units =
    [
        ("ms", 1),
        ("s", 1_000),
        ("m", 60_000),
        ("h", 3_600_000),
    ];

    /// <summary>Parses <paramref name="text"/>; on failure <paramref name="error"/> says why, in words fit for the user.</summary>
    public static bool TryParse(string? text, out TimeSpan value, out string? error)
    {
        value = default;
        error = null;
        string s = text?.Trim() ?? "";
        if (s.Length == 0)
        {
            error = "a duration is required, e.g. 30s, 500ms, 2m, 1h or 30 (seconds)";
            return false;
        }

        double unit = 1_000;
        string number = s;
        // "ms" must be tried before "s" and "m".
        foreach (var (suffix, ms) in Units)
        {
            if (s.EndsWith(suffix, StringComparison.OrdinalIgnoreCase))
            {
                unit = ms;
                number = s[..^suffix.Length];
                break;
            }
        }

        if (number.Length == 0 || !char.IsAsciiDigit(number[0]) && number[0] != '.'
            || !double.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double amount))
        {
            error = $"'{text}' is not a duration; use e.g. 30s, 500ms, 2m, 1h or 30 (seconds)";
            return false;
        }

        double total = amount * unit;
        if (total > Max.TotalMilliseconds)
        {
            error = $"'{text}' is too long; the maximum is {Max.TotalDays:0.#} days";
            return false;
        }

        value = TimeSpan.FromMilliseconds(Math.Round(total));
        return true;
    }
}

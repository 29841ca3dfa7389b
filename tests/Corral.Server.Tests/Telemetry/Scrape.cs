using System.Globalization;
using System.Text;

namespace Corral.Server.Tests.Telemetry;

/// <summary>One series of a Prometheus text exposition: its name, labels and value.</summary>
internal sealed record Series(string Name, IReadOnlyDictionary<string, string> Labels, double Value);

/// <summary>A <c>/metrics</c> scrape, parsed (the text format: <c>name{label="value",…} number</c> per line).</summary>
internal sealed class Scrape(IReadOnlyList<Series> series, string text)
{
    public IReadOnlyList<Series> Series { get; } = series;

    public string Text { get; } = text;

    public static async Task<Scrape> TakeAsync(HttpClient http)
    {
        using var response = await http.GetAsync("/metrics");
        response.EnsureSuccessStatusCode();
        string text = await response.Content.ReadAsStringAsync();
        return Parse(text);
    }

    /// <summary>Scrapes until <paramref name="condition"/> holds, within a deadline.</summary>
    public static async Task<Scrape> WaitAsync(HttpClient http, Func<Scrape, bool> condition, TimeSpan deadline, string what)
    {
        var limit = DateTime.UtcNow + deadline;
        while (true)
        {
            var scrape = await TakeAsync(http);
            if (condition(scrape))
                return scrape;
            if (DateTime.UtcNow > limit)
                throw new TimeoutException($"Timed out waiting for {what}; last scrape:\n{scrape.Text}");
            await Task.Delay(50);
        }
    }

    /// <summary>The sum over every series named <paramref name="name"/> that has all of <paramref name="labels"/> (0 when none).</summary>
    public double Sum(string name, params (string Label, string Value)[] labels) =>
        Series.Where(s => s.Name == name && labels.All(l => s.Labels.TryGetValue(l.Label, out var v) && v == l.Value)).Sum(s => s.Value);

    public bool Has(string name) => Series.Any(s => s.Name == name);

    public static Scrape Parse(string text)
    {
        var series = new List<Series>();
        foreach (string raw in text.Split('\n'))
        {
            string line = raw.TrimEnd('\r');
            if (line.Length == 0 || line.StartsWith('#'))
                continue;
            int brace = line.IndexOf('{');
            int space = line.LastIndexOf(' ');
            string name;
            var labels = new Dictionary<string, string>(StringComparer.Ordinal);
            if (brace >= 0 && brace < space)
            {
                name = line[..brace];
                int end = ParseLabels(line, brace + 1, labels);
                space = line.IndexOf(' ', end);
            }
            else
            {
                name = line[..line.IndexOf(' ')];
                space = name.Length;
            }

            string value = line[(space + 1)..].Split(' ')[0]; // a timestamp may follow
            series.Add(new Series(name, labels, value switch
            {
                "+Inf" => double.PositiveInfinity,
                "-Inf" => double.NegativeInfinity,
                "NaN" => double.NaN,
                _ => double.Parse(value, CultureInfo.InvariantCulture),
            }));
        }

        return new Scrape(series, text);
    }

    /// <summary>Reads <c>a="x",b="y"}</c> from <paramref name="at"/>; returns the index after the closing brace.</summary>
    private static int ParseLabels(string line, int at, Dictionary<string, string> labels)
    {
        while (line[at] != '}')
        {
            int equals = line.IndexOf('=', at);
            string key = line[at..equals].TrimStart(',');
            var value = new StringBuilder();
            int i = equals + 2; // past ="
            for (; line[i] != '"'; i++)
            {
                if (line[i] == '\\')
                {
                    i++;
                    value.Append(line[i] == 'n' ? '\n' : line[i]);
                }
                else
                {
                    value.Append(line[i]);
                }
            }

            labels[key] = value.ToString();
            at = i + 1;
            if (line[at] == ',')
                at++;
        }

        return at + 1;
    }
}

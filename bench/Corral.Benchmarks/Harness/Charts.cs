using ScottPlot;

namespace Corral.Benchmarks.Harness;

/// <summary>Grouped bar charts (one group per case, one bar per contender) written as PNG with ScottPlot.</summary>
internal static class Charts
{
    public static void GroupedBars(
        string path, string title, string yLabel, IReadOnlyList<string> groups, IReadOnlyList<string> contenders,
        Func<string, string, double?> value, bool logScale)
    {
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        var bars = new List<Bar>();
        double width = 0.8 / Math.Max(1, contenders.Count);
        var tickPositions = new List<double>();
        for (int g = 0; g < groups.Count; g++)
        {
            tickPositions.Add(g);
            for (int c = 0; c < contenders.Count; c++)
            {
                if (value(groups[g], contenders[c]) is not { } v || double.IsNaN(v) || v <= 0)
                    continue;
                double shown = logScale ? Math.Log10(v) : v;
                bars.Add(new Bar
                {
                    Position = g - 0.4 + width * (c + 0.5),
                    Value = shown,
                    Size = width * 0.9,
                    FillColor = palette.GetColor(c),
                });
            }
        }

        if (logScale && bars.Count > 0)
        {
            double floor = Math.Floor(bars.Min(b => b.Value));
            foreach (var b in bars)
                b.ValueBase = floor;
        }

        plot.Add.Bars(bars);
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(tickPositions.ToArray(), groups.ToArray());
        if (logScale)
        {
            plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic
            {
                MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
                IntegerTicksOnly = true,
                LabelFormatter = y => FormatPow10(y),
            };
        }

        for (int c = 0; c < contenders.Count; c++)
            plot.Legend.ManualItems.Add(new LegendItem { LabelText = contenders[c], FillColor = palette.GetColor(c) });
        plot.ShowLegend(Alignment.UpperRight);
        plot.Title(title);
        plot.YLabel(yLabel + (logScale ? " (log scale)" : ""));
        plot.Axes.Margins(bottom: 0);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        plot.SavePng(path, Math.Max(900, 180 * groups.Count + 120 * contenders.Count), 560);
    }

    private static string FormatPow10(double y)
    {
        double v = Math.Pow(10, y);
        return v >= 1 ? v.ToString("N0", System.Globalization.CultureInfo.InvariantCulture) : v.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture);
    }
}

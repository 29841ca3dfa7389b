using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Corral.Server.Api;
using Corral.Server.Hosting;
using Corral.Server.Internal.Storage;
using Corral.Server.Internal.Storage.Sqlite;
using Corral.Server.Tests.Support;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace Corral.Server.Tests.Dashboard;

public sealed partial class DashboardBrowserTests
{
    private const int HistoryLength = 10_000;

    /// <summary>The slowest a page of the history may take in the browser, from its request to its rows drawn.</summary>
    private const int InstantMs = 1500;

    [Fact(Timeout = 300_000)]
    public async Task A_history_of_ten_thousand_tasks_opens_and_pages_at_once()
    {
        string data = Directory.CreateTempSubdirectory("corral-server-").FullName;
        string marker = "needle-" + Guid.NewGuid().ToString("N")[..8];
        int marked = await SeedHistoryAsync(data, marker);
        await using var server = await TestServer.StartAsync(token: Token, dataDirectory: data);
        try
        {
            await using var chromium = await Chromium.LaunchAsync();
            var page = await chromium.PageAsync();
            var opening = Stopwatch.StartNew();
            await page.GotoAsync(server.BaseAddress + "?token=" + Token);
            var rows = page.Locator("#history tbody tr[data-id]");
            await Expect(rows).ToHaveCountAsync(25);
            opening.Stop();
            await Expect(page.Locator(".count-card.s-succeeded .n")).ToHaveTextAsync(Seeded(TaskState.Succeeded).ToString(CultureInfo.InvariantCulture));
            await Expect(page.Locator(".count-card.s-failed .n")).ToHaveTextAsync(Seeded(TaskState.Failed).ToString(CultureInfo.InvariantCulture));
            var times = new List<int> { await PageMillisecondsAsync(page) };
            await chromium.ScreenshotAsync(page, "history-10000");

            // Ten pages back, each drawn at once, each older than the one before.
            string? last = await rows.Last.GetAttributeAsync("data-id");
            for (int i = 0; i < 10; i++)
            {
                await page.GetByRole(AriaRole.Button, new() { Name = "Older →" }).ClickAsync();
                await Expect(page.Locator(".pager")).ToContainTextAsync($"Page {i + 2}");
                await Expect(rows.First).Not.ToHaveAttributeAsync("data-id", last!);
                Assert.True(string.CompareOrdinal(await rows.First.GetAttributeAsync("data-id"), last) < 0, "each page is older than the last");
                times.Add(await PageMillisecondsAsync(page));
                last = await rows.Last.GetAttributeAsync("data-id");
            }

            await page.GetByRole(AriaRole.Button, new() { Name = "← Newer" }).ClickAsync();
            await Expect(page.Locator(".pager")).ToContainTextAsync("Page 10");

            // Filters are the server's: a text found in a few tasks among ten thousand, then a status.
            await page.GetByLabel("Text", new() { Exact = true }).FillAsync(marker);
            await page.GetByRole(AriaRole.Button, new() { Name = "Filter" }).ClickAsync();
            await Expect(rows).ToHaveCountAsync(marked);
            times.Add(await PageMillisecondsAsync(page));
            Assert.Contains("q=" + marker, page.Url, StringComparison.Ordinal);
            await page.GetByRole(AriaRole.Button, new() { Name = "Clear" }).ClickAsync();
            await page.GetByLabel("Status", new() { Exact = true }).SelectOptionAsync("failed");
            await page.GetByRole(AriaRole.Button, new() { Name = "Filter" }).ClickAsync();
            await Expect(rows).ToHaveCountAsync(25);
            await Expect(page.Locator("#history tbody tr[data-status='failed']")).ToHaveCountAsync(25);
            TestContext.Current.TestOutputHelper?.WriteLine($"opened in {opening.ElapsedMilliseconds} ms; pages drawn in {string.Join(", ", times)} ms");
            Assert.All(times, t => Assert.True(t <= InstantMs, $"pages drawn in {string.Join(", ", times)} ms"));
            Assert.True(opening.ElapsedMilliseconds < 15_000, $"the overview took {opening.ElapsedMilliseconds} ms to open");
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }

    [Fact(Timeout = 180_000)]
    public async Task A_task_with_twenty_thousand_lines_keeps_the_last_five_thousand_on_its_page()
    {
        await using var server = await TestServer.StartAsync(token: Token);
        var task = await server.Http.CreateAsync(new { agent = "command", command = new[] { "seq", "1", "20000" } }, wait: 60);
        Assert.Equal("succeeded", task.TaskStatus);
        await using var chromium = await Chromium.LaunchAsync();
        var page = await chromium.PageAsync();

        await page.GotoAsync(server.BaseAddress + $"?token={Token}#/tasks/{task.Id}");
        await Expect(page.Locator(".conv .ev-end")).ToContainTextAsync("succeeded", new() { Timeout = 60_000 });
        var lines = page.Locator(".conv .line");
        await Expect(lines).ToHaveCountAsync(5000);
        await Expect(lines.Last).ToHaveTextAsync("20000");
        await Expect(lines.First).ToHaveTextAsync("15001");
        await Expect(page.Locator("#panel-conversation")).ToContainTextAsync("the first 15000 are not shown here");
    }

    /// <summary>What the seeded history holds: every tenth task failed, the rest succeeded.</summary>
    private static int Seeded(TaskState state) => state switch
    {
        TaskState.Failed => HistoryLength / 10,
        TaskState.Succeeded => HistoryLength - HistoryLength / 10,
        _ => 0,
    };

    /// <summary>Writes a history straight into the store, as a server would have over weeks; returns how many tasks carry the marker.</summary>
    private static async Task<int> SeedHistoryAsync(string data, string marker)
    {
        var paths = new ServerPaths(data, Path.Combine(data, "workspaces"));
        var guard = new StorageGuard(paths, Options.Create(new CorralOptions { DiskReserveMb = 0, MinFreeDiskMb = 0 }), TimeProvider.System, NullLogger<StorageGuard>.Instance);
        await using var store = new SqliteTaskStore(paths.Database, TimeProvider.System, TimeSpan.FromSeconds(30), guard, NullLogger<SqliteTaskStore>.Instance);
        var start = DateTimeOffset.UtcNow.AddDays(-7);
        int marked = 0;
        var inserts = new List<Task>();
        for (int i = 0; i < HistoryLength; i++)
        {
            bool failed = i % 10 == 0;
            string word = i % 1000 == 7 ? marker : "tick";
            marked += word == marker ? 1 : 0;
            var created = start.AddSeconds(i * 60);
            var record = new TaskRecord
            {
                Id = "tsk_" + i.ToString("x32", CultureInfo.InvariantCulture),
                Status = failed ? TaskState.Failed : TaskState.Succeeded,
                Agent = i % 3 == 0 ? "claude-code" : "command",
                CreatedAt = created,
                StartedAt = created.AddMilliseconds(40),
                EndedAt = created.AddMilliseconds(40 + i % 5000),
                DurationMs = i % 5000,
                CostUsd = i % 3 == 0 ? 0.0123 : null,
                Error = failed ? new TaskError("agent_error", "exit code 1") : null,
            };
            inserts.Add(store.InsertAsync(new NewTask(record, $$"""{"agent":"command","command":["echo","{{word}}"]}""", "h" + i), Durability.Server, CancellationToken.None));
        }

        await Task.WhenAll(inserts);
        return marked;
    }

    /// <summary>The time the last history page took in the page itself (the dashboard shows it under the table).</summary>
    private static async Task<int> PageMillisecondsAsync(IPage page)
    {
        string text = await page.Locator("section[aria-labelledby='history-title'] p[role='status']").InnerTextAsync();
        var match = PageTime().Match(text);
        Assert.True(match.Success, text);
        return int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    [GeneratedRegex(@"· (\d+) ms")]
    private static partial Regex PageTime();
}

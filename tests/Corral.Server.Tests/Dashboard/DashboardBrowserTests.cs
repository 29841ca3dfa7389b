using System.Net;
using System.Text.RegularExpressions;
using Corral.Server.Tests.Support;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace Corral.Server.Tests.Dashboard;

/// <summary>
/// The dashboard in a real browser (Debian's Chromium through Playwright) against a real server with a token: what an
/// operator does with it. One browser at a time: the tests of this class run one after another.
/// </summary>
public sealed partial class DashboardBrowserTests
{
    private const string Token = "dashboard-test-token";

    static DashboardBrowserTests() => SetDefaultExpectTimeout(20_000);

    [Fact(Timeout = 240_000)]
    public async Task An_operator_signs_in_starts_a_task_watches_it_live_opens_its_process_tree_and_cancels_it()
    {
        await using var server = await TestServer.StartAsync(token: Token);
        await using var chromium = await Chromium.LaunchAsync();
        var page = await chromium.PageAsync();

        await chromium.KeepEvidenceAsync(page, "operator", async () =>
        {
            // The page loads without the token and asks for it; the API refuses without it.
            var opened = await page.GotoAsync(server.BaseAddress + "");
            Assert.Equal(200, opened!.Status);
            await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Sign in" })).ToBeVisibleAsync();
            using (var anonymous = new HttpClient { BaseAddress = server.BaseAddress })
            {
                Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/v1/tasks")).StatusCode);
                Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/ui/app.js")).StatusCode);
            }

            await page.GetByLabel("Token").FillAsync("not-the-token");
            await page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
            await Expect(page.GetByText("The token is not valid.")).ToBeVisibleAsync();
            await page.GetByLabel("Token").FillAsync(Token);
            await page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
            await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Overview" })).ToBeVisibleAsync();

            // A command task from the form: a line every 0.2 s for 20 s.
            await page.GetByRole(AriaRole.Link, new() { Name = "New task" }).ClickAsync();
            // The overview has an "Agent" filter of its own: select in the form only once it is there.
            await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "New task" })).ToBeVisibleAsync();
            await page.GetByLabel("Agent").SelectOptionAsync("command");
            await page.GetByLabel("Command", new() { Exact = true }).FillAsync("for i in $(seq 1 100); do echo \"tick $i\"; sleep 0.2; done");
            await page.GetByRole(AriaRole.Button, new() { Name = "Start task" }).ClickAsync();
            await Expect(page).ToHaveURLAsync(TaskAddress());
            string id = TaskAddress().Match(page.Url).Groups[1].Value;
            var status = page.Locator(".status-holder .badge");
            await Expect(status).ToHaveTextAsync("running");

            // Its events arrive while it runs: more lines appear, and the task is still running when they do.
            var lines = page.Locator(".conv .line");
            await Expect(page.Locator(".conv")).ToContainTextAsync("tick 3");
            int seen = await lines.CountAsync();
            await Proc.WaitForAsync(async () => await lines.CountAsync() >= seen + 5, TimeSpan.FromSeconds(20), "five more lines on the page");
            Assert.Equal("running", (await server.Http.GetTaskAsync(id)).TaskStatus);
            await chromium.ScreenshotAsync(page, "task-running");

            // The live process tree: bash, and the sleep it spawned under it, with their memory.
            await page.GetByRole(AriaRole.Tab, new() { Name = "Processes" }).ClickAsync();
            var tree = page.Locator("#process-tree tbody tr");
            var bash = tree.Filter(new() { Has = page.Locator("td.cmd .mono", new() { HasTextRegex = new Regex(@"^(\S*/)?bash -c ") }) });
            var sleep = tree.Filter(new() { Has = page.Locator("td.cmd .mono", new() { HasTextRegex = new Regex(@"^sleep 0\.2$") }) });
            await Expect(bash).ToHaveAttributeAsync("data-depth", "0");
            await Expect(sleep.First).ToHaveAttributeAsync("data-depth", "1");
            Assert.Matches(@"\d+(\.\d+)? (KiB|MiB)", await tree.First.Locator("td").Nth(3).InnerTextAsync());
            await chromium.ScreenshotAsync(page, "task-processes");

            // Cancel: the task ends cancelled, and the page shows what teardown killed.
            await page.GetByRole(AriaRole.Button, new() { Name = "Cancel task" }).ClickAsync();
            await Expect(status).ToHaveTextAsync("cancelled");
            await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Cancel task" })).ToBeHiddenAsync();
            var record = await server.Http.GetTaskAsync(id);
            Assert.Equal("cancelled", record.TaskStatus);
            int killed = record.Body!["process"]!["killed"]!.AsArray().Count;
            if (killed > 0)
                await Expect(page.Locator("#killed tbody tr")).ToHaveCountAsync(killed);
            await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Resource receipt" })).ToBeVisibleAsync();
            await chromium.ScreenshotAsync(page, "task-cancelled");

            // The conversation holds the end, and the overview's history the cancelled task.
            await page.GetByRole(AriaRole.Tab, new() { Name = "Conversation" }).ClickAsync();
            await Expect(page.Locator(".conv .ev-end")).ToContainTextAsync("cancelled");
            await page.GetByRole(AriaRole.Link, new() { Name = "← Overview" }).ClickAsync();
            var row = page.Locator($"#history tbody tr[data-id='{id}']");
            await Expect(row.Locator(".badge")).ToHaveTextAsync("cancelled");
            await Expect(page.Locator(".count-card.s-cancelled .n")).ToHaveTextAsync("1");
        });
    }

    [Fact(Timeout = 120_000)]
    public async Task Opening_the_address_with_the_token_signs_in_and_takes_the_token_out_of_the_address_bar()
    {
        await using var server = await TestServer.StartAsync(token: Token);
        await using var chromium = await Chromium.LaunchAsync();
        var page = await chromium.PageAsync();
        var addresses = new List<string>();
        page.Request += (_, request) => addresses.Add(request.Url);

        await page.GotoAsync(server.BaseAddress + "?token=" + Token);
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Overview" })).ToBeVisibleAsync();
        Assert.DoesNotContain(Token, page.Url, StringComparison.Ordinal);
        Assert.Equal(Token, await page.EvaluateAsync<string>("() => sessionStorage.getItem('corral.token')"));
        // Only the address typed in held the token; every request the page made sends it as a header.
        await Expect(page.Locator(".live")).ToHaveTextAsync("Live");
        Assert.Single(addresses, a => a.Contains(Token, StringComparison.Ordinal));

        await page.GetByRole(AriaRole.Button, new() { Name = "Sign out" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Sign in" })).ToBeVisibleAsync();
        Assert.Null(await page.EvaluateAsync<string?>("() => sessionStorage.getItem('corral.token')"));
    }

    [GeneratedRegex(@"#/tasks/(tsk_[0-9a-f]+)$")]
    private static partial Regex TaskAddress();
}

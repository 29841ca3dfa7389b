using Corral.Server.Tests.Support;
using Deque.AxeCore.Commons;
using Deque.AxeCore.Playwright;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace Corral.Server.Tests.Dashboard;

public sealed partial class DashboardBrowserTests
{
    [Fact(Timeout = 240_000)]
    public async Task Every_page_passes_axe_in_both_themes_and_works_from_the_keyboard()
    {
        // One slot: a long task runs while another waits, so the overview has something in each list.
        await using var server = await TestServer.StartAsync(s => s["Corral:MaxConcurrentTasks"] = "1", token: Token);
        await server.Http.CreateAsync(new { agent = "command", command = new[] { "bash", "-c", "echo built; echo 'warning: 2 tests skipped' >&2" } }, wait: 30);
        await server.Http.CreateAsync(new { agent = "command", command = new[] { "bash", "-c", "echo 'FAIL: 1 test failed' >&2; exit 1" } }, wait: 30);
        string claude = (await server.Http.ClaudeAsync("tool: list the files"))!.Id!;
        string running = (await server.Http.CreateAsync(new { agent = "command", command = new[] { "bash", "-c", "for i in $(seq 1 600); do echo \"step $i\"; sleep 0.5; done & sleep 300 & wait" } })).Id!;
        await server.Http.WaitForAsync(running, r => r["status"]!.GetValue<string>() == "running");
        string queued = (await server.Http.CreateAsync(new { agent = "command", command = new[] { "echo", "later" } })).Id!;

        await using var chromium = await Chromium.LaunchAsync();
        var page = await chromium.PageAsync();
        await page.GotoAsync(server.BaseAddress + "?token=" + Token);
        await Expect(page.Locator($"#running-title ~ table tr[data-id='{running}']")).ToBeVisibleAsync();
        await Expect(page.Locator($"#queued-title ~ table tr[data-id='{queued}']")).ToBeVisibleAsync();
        await Expect(page.Locator("#history tbody tr[data-id]")).ToHaveCountAsync(5);

        foreach (string theme in new[] { "light", "dark" })
        {
            await SetThemeAsync(page, theme);
            await AssertAccessibleAsync(page, $"overview ({theme})");
            await chromium.ScreenshotAsync(page, $"overview-{theme}");
        }

        // The Claude task's page: its conversation (text, a tool call and its result), then its result with cost and usage.
        await page.GotoAsync(server.BaseAddress + $"#/tasks/{claude}");
        await Expect(page.Locator(".conv .ev-tool")).ToContainTextAsync("Bash");
        await Expect(page.Locator(".conv .ev-text").Last).ToContainTextAsync("two files");
        await AssertAccessibleAsync(page, "conversation (dark)");
        await chromium.ScreenshotAsync(page, "task-conversation-dark");
        // From the keyboard: the tabs move with the arrow keys.
        await page.GetByRole(AriaRole.Tab, new() { Name = "Conversation" }).FocusAsync();
        await page.Keyboard.PressAsync("ArrowRight");
        await page.Keyboard.PressAsync("ArrowRight");
        await Expect(page.GetByRole(AriaRole.Tab, new() { Name = "Result" })).ToBeFocusedAsync();
        await Expect(page.GetByRole(AriaRole.Tab, new() { Name = "Result" })).ToHaveAttributeAsync("aria-selected", "true");
        await Expect(page.Locator("#usage")).ToContainTextAsync("output_tokens");
        await Expect(page.Locator("#panel-result")).ToContainTextAsync("$0.0123");
        await AssertAccessibleAsync(page, "result (dark)");
        await page.Keyboard.PressAsync("End");
        await Expect(page.GetByRole(AriaRole.Tab, new() { Name = "Record" })).ToBeFocusedAsync();

        await SetThemeAsync(page, "light");
        await page.GotoAsync(server.BaseAddress + $"#/tasks/{running}");
        await page.GetByRole(AriaRole.Tab, new() { Name = "Processes" }).ClickAsync();
        await Expect(page.Locator("#process-tree tbody tr")).Not.ToHaveCountAsync(0);
        await AssertAccessibleAsync(page, "process tree (light)");
        await page.GetByRole(AriaRole.Tab, new() { Name = "Transcript" }).ClickAsync();
        await Expect(page.Locator("pre.transcript")).ToContainTextAsync("step 1");
        await AssertAccessibleAsync(page, "transcript (light)");

        // The new-task form, filled from the keyboard alone; a refused field is shown next to it.
        await page.GotoAsync(server.BaseAddress + "#/new");
        await AssertAccessibleAsync(page, "new task (light)");
        await page.GetByLabel("Agent").FocusAsync();
        await page.Keyboard.PressAsync("Tab");
        await Expect(page.GetByLabel("Prompt")).ToBeFocusedAsync();
        await page.Keyboard.PressAsync("Tab");
        await Expect(page.GetByLabel("Model")).ToBeFocusedAsync();
        await page.Keyboard.PressAsync("Enter"); // submits the form, with no prompt typed
        await Expect(page.Locator(".error-summary")).ToContainTextAsync("enter a prompt");
        await Expect(page.GetByLabel("Prompt")).ToHaveAttributeAsync("aria-invalid", "true");
        await AssertAccessibleAsync(page, "new task with an error (light)");
        await chromium.ScreenshotAsync(page, "new-task-light");

        await server.Http.CancelAsync(running);
    }

    private static async Task SetThemeAsync(IPage page, string theme)
    {
        var button = page.Locator("#theme");
        for (int i = 0; i < 3 && await button.InnerTextAsync() != $"Theme: {theme}"; i++)
            await button.ClickAsync();
        await Expect(button).ToHaveTextAsync($"Theme: {theme}");
    }

    /// <summary>axe-core finds no WCAG 2.1 A/AA violation (labels, names, roles, contrast, ARIA) and no best-practice one.</summary>
    private static async Task AssertAccessibleAsync(IPage page, string what)
    {
        var result = await page.RunAxe(new AxeRunOptions
        {
            RunOnly = new RunOnlyOptions { Type = "tag", Values = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] },
        });
        Assert.NotEmpty(result.Passes); // it did look
        var found = result.Violations.Select(v => $"{v.Id} ({v.Impact}): {v.Help} at {string.Join(" | ", v.Nodes.Select(n => string.Join(" ", n.Target)))}").ToList();
        Assert.True(found.Count == 0, $"{what}:\n" + string.Join("\n", found));
    }
}

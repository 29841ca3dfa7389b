using Microsoft.Playwright;

namespace Corral.Server.Tests.Support;

/// <summary>
/// Debian's Chromium driven by Playwright: headless, a fresh profile, no network of its own (this machine's network is
/// closed, and Chromium would keep trying). Never <c>playwright install</c>: the browser is the system's.
/// </summary>
internal sealed class Chromium : IAsyncDisposable
{
    public const string ExecutablePath = "/usr/bin/chromium";

    private readonly IPlaywright _playwright;
    private readonly DirectoryInfo _profile;

    private Chromium(IPlaywright playwright, IBrowserContext context, DirectoryInfo profile, string artifacts)
    {
        _playwright = playwright;
        Context = context;
        _profile = profile;
        ArtifactsDirectory = artifacts;
    }

    public IBrowserContext Context { get; }

    /// <summary>Where screenshots go: <c>artifacts/dashboard</c>.</summary>
    public string ArtifactsDirectory { get; }

    /// <summary>Skips where Chromium is not installed, except in CI, where <c>.ci/run</c> installs it and its absence is a failure.</summary>
    public static void SkipUnlessInstalled() =>
        Assert.SkipUnless(File.Exists(ExecutablePath) || Environment.GetEnvironmentVariable("CI") == "true",
            $"{ExecutablePath} is not installed (apt-get install chromium)");

    public static async Task<Chromium> LaunchAsync()
    {
        SkipUnlessInstalled();
        var playwright = await Playwright.CreateAsync();
        var profile = Directory.CreateTempSubdirectory("corral-chromium-");
        try
        {
            var context = await playwright.Chromium.LaunchPersistentContextAsync(profile.FullName, new BrowserTypeLaunchPersistentContextOptions
            {
                ExecutablePath = ExecutablePath,
                Headless = true,
                Args =
                [
                    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--no-first-run", "--disable-quic", "--disable-dev-shm-usage",
                ],
                ViewportSize = new ViewportSize { Width = 1440, Height = 900 },
                Timeout = 60_000,
            });
            context.SetDefaultTimeout(20_000);
            return new Chromium(playwright, context, profile, Repository.Artifacts("dashboard"));
        }
        catch
        {
            playwright.Dispose();
            profile.Delete(recursive: true);
            throw;
        }
    }

    /// <summary>The page the context opened with.</summary>
    public async Task<IPage> PageAsync() => Context.Pages.FirstOrDefault() ?? await Context.NewPageAsync();

    /// <summary>Saves a screenshot of the whole page as <c>artifacts/dashboard/NAME.png</c>; returns its path.</summary>
    public async Task<string> ScreenshotAsync(IPage page, string name, bool fullPage = true)
    {
        string path = Path.Combine(ArtifactsDirectory, name + ".png");
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = path, FullPage = fullPage });
        return path;
    }

    /// <summary>Runs <paramref name="body"/>; when it fails, leaves a screenshot and the page's console in <c>artifacts/dashboard/failed-NAME.*</c>.</summary>
    public async Task KeepEvidenceAsync(IPage page, string name, Func<Task> body)
    {
        var console = new List<string>();
        page.Console += (_, message) => console.Add($"{message.Type}: {message.Text}");
        page.PageError += (_, error) => console.Add("error: " + error);
        try
        {
            await body();
        }
        catch
        {
            await ScreenshotAsync(page, "failed-" + name);
            await File.WriteAllLinesAsync(Path.Combine(ArtifactsDirectory, $"failed-{name}.log"), [page.Url, .. console]);
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await Context.CloseAsync();
        }
        finally
        {
            _playwright.Dispose();
            try
            {
                _profile.Delete(recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}

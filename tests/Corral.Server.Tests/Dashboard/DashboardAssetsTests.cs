using System.Net;
using System.Net.Http.Headers;
using System.Text.RegularExpressions;
using Corral.Server.Dashboard;
using Corral.Server.Tests.Support;

namespace Corral.Server.Tests.Dashboard;

/// <summary>The dashboard's files as the server serves them: embedded, complete, offline, cached by ETag, under a strict policy.</summary>
public sealed partial class DashboardAssetsTests
{
    [Fact(Timeout = 60_000)]
    public async Task The_page_and_its_files_load_without_the_token_under_a_strict_policy()
    {
        await using var server = await TestServer.StartAsync(token: "assets-test-token");
        using var anonymous = new HttpClient { BaseAddress = server.BaseAddress };

        using var page = await anonymous.GetAsync("/");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        string csp = page.Headers.GetValues("Content-Security-Policy").Single();
        Assert.Contains("script-src 'self'", csp, StringComparison.Ordinal);
        Assert.Contains("frame-ancestors 'none'", csp, StringComparison.Ordinal);
        Assert.DoesNotContain("unsafe-inline", csp, StringComparison.Ordinal);
        Assert.Equal("no-referrer", page.Headers.GetValues("Referrer-Policy").Single());
        Assert.Equal("nosniff", page.Headers.GetValues("X-Content-Type-Options").Single());

        using var script = await anonymous.GetAsync("/ui/app.js");
        Assert.Equal("text/javascript", script.Content.Headers.ContentType?.MediaType);
        Assert.Equal(HttpStatusCode.NotFound, (await anonymous.GetAsync("/ui/no-such-file.js")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/v1/stats")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/uix")).StatusCode); // a prefix, not a segment

        // Unchanged files are revalidated, not sent again.
        using var again = new HttpRequestMessage(HttpMethod.Get, "/ui/app.js");
        again.Headers.IfNoneMatch.Add(EntityTagHeaderValue.Parse(script.Headers.ETag!.ToString()));
        Assert.Equal(HttpStatusCode.NotModified, (await anonymous.SendAsync(again)).StatusCode);
    }

    [Fact]
    public void Every_file_the_page_names_is_embedded_and_nothing_comes_from_elsewhere()
    {
        var assets = DashboardAssets.Load();
        string Text(string path) => System.Text.Encoding.UTF8.GetString(assets.Find(path)!.Content);
        Assert.NotNull(assets.Find("index.html"));

        var named = new HashSet<string>(StringComparer.Ordinal);
        foreach (Match m in Reference().Matches(Text("index.html")))
            named.Add(m.Groups[1].Value.TrimStart('/'));
        foreach (string path in assets.Paths.Where(p => p.EndsWith(".js", StringComparison.Ordinal)))
        {
            foreach (Match m in Import().Matches(Text(path)))
                named.Add("ui/" + m.Groups[1].Value);
        }

        Assert.Contains("ui/app.js", named);
        Assert.Contains("ui/app.css", named);
        Assert.All(named, path => Assert.NotNull(assets.Find(path)));
        foreach (string path in assets.Paths.Where(p => !p.EndsWith(".png", StringComparison.Ordinal)))
            Assert.DoesNotMatch(Remote(), Text(path).Replace("http://www.w3.org/2000/svg", "", StringComparison.Ordinal));
    }

    [GeneratedRegex("(?:src|href)=\"(/ui/[^\"]+)\"")]
    private static partial Regex Reference();

    [GeneratedRegex("""from '\./([^']+)'""")]
    private static partial Regex Import();

    [GeneratedRegex("https?://")]
    private static partial Regex Remote();
}

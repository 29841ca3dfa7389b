using Corral.Server.Hosting;
using Corral.Server.Internal.Webhooks;

namespace Corral.Server.Tests.Webhooks;

/// <summary>The pure rules of webhooks: secrets, URLs, events and the retry schedule, with numbers.</summary>
public sealed class WebhookRulesTests
{
    [Theory]
    [InlineData(24, true)]
    [InlineData(64, true)]
    [InlineData(23, false)]
    [InlineData(65, false)]
    public void A_secret_holds_24_to_64_bytes_of_key(int bytes, bool valid)
    {
        var (key, problem) = WebhookRules.ParseSecret("whsec_" + Convert.ToBase64String(new byte[bytes]));
        Assert.Equal(valid, key is not null);
        Assert.Equal(valid, problem is null);
    }

    [Theory]
    [InlineData("https://hooks.example.com/x", null)]
    [InlineData("ftp://example.com/", "http or https")]
    [InlineData("/relative", "http or https")]
    [InlineData("https://u:p@example.com/", "user name")]
    [InlineData("", "required")]
    [InlineData("https://example.com/hook/%2e%2e/evil", "escaped")]
    [InlineData("https://example.com/hook/%2E%2E%2Fevil", "escaped")]
    [InlineData("https://example.com/hook/..%5Cevil", "escaped")]
    public void A_webhook_url_is_an_absolute_http_url_without_user_info(string url, string? problem)
    {
        string? found = WebhookRules.UrlProblem(url);
        if (problem is null)
            Assert.Null(found);
        else
            Assert.Contains(problem, found);
    }

    [Theory]
    [InlineData("http://127.0.0.1:5399/hook/x", true)]
    [InlineData("http://127.0.0.1:5399/hook/../evil", false)]
    [InlineData("http://127.0.0.1:5399/hook/./x/../y", true)]
    [InlineData("http://127.0.0.1:5399/hookx", false)]
    [InlineData("HTTP://LOCALHOST:5399/hook/x", true)]
    public void A_webhook_url_is_checked_against_the_allowed_prefixes_as_it_will_be_requested(string url, bool allowed) =>
        Assert.Equal(allowed, WebhookRules.Allowed(url, ["http://127.0.0.1:5399/hook/", "http://localhost:5399/hook/"]));

    [Fact]
    public void A_url_longer_than_2048_characters_is_refused() =>
        Assert.Contains("2048", WebhookRules.UrlProblem("https://example.com/" + new string('a', 2048)));

    [Fact]
    public void Events_default_to_end_and_must_include_it()
    {
        Assert.Equal(["end"], WebhookRules.Events(null).Events);
        Assert.Equal(["status", "end"], WebhookRules.Events(["end", "status", "end"]).Events);
        Assert.Contains("must include 'end'", WebhookRules.Events(["status"]).Problem);
        Assert.Contains("unknown event 'x'", WebhookRules.Events(["end", "x"]).Problem);
    }

    [Fact]
    public void The_wait_doubles_from_the_first_retry_up_to_the_cap_and_stops_after_the_attempts_or_the_age()
    {
        var options = new WebhookOptions { FirstRetrySeconds = 1, MaxRetrySeconds = 300, MaxAttempts = 8, MaxAgeSeconds = 3600 };
        var start = DateTimeOffset.UnixEpoch;
        Assert.Equal([1, 2, 4, 8, 16, 32, 64], Enumerable.Range(1, 7).Select(a => (WebhookRules.NextAttempt(a, start, start, options, 1.0)!.Value - start).TotalSeconds));
        Assert.Null(WebhookRules.NextAttempt(8, start, start, options, 1.0));
        var many = new WebhookOptions { FirstRetrySeconds = 1, MaxRetrySeconds = 300, MaxAttempts = 100, MaxAgeSeconds = 3600 };
        Assert.Equal(300, (WebhookRules.NextAttempt(20, start, start, many, 1.0)!.Value - start).TotalSeconds);
        Assert.Equal(360, (WebhookRules.NextAttempt(20, start, start, many, 1.2)!.Value - start).TotalSeconds);
        // Past the age, no attempt is due.
        Assert.Null(WebhookRules.NextAttempt(3, start, start + TimeSpan.FromSeconds(3599), many, 1.0));
    }
}

using Corral.Server.Api;
using Corral.Server.Hosting;

namespace Corral.Server.Internal.Webhooks;

/// <summary>What a webhook secret, URL and event list must be: pure checks, shared by admission and the start of the server.</summary>
internal static class WebhookRules
{
    /// <summary>The prefix of a secret in the Standard Webhooks format.</summary>
    public const string SecretPrefix = "whsec_";

    /// <summary>The longest webhook URL.</summary>
    public const int MaxUrlLength = 2048;

    /// <summary>The smallest and largest key of a secret, in bytes.</summary>
    public const int MinKeyLength = 24, MaxKeyLength = 64;

    /// <summary>The key of a secret, or why it is not one (the message never repeats the secret).</summary>
    public static (byte[]? Key, string? Problem) ParseSecret(string secret)
    {
        if (!secret.StartsWith(SecretPrefix, StringComparison.Ordinal))
            return (null, $"Corral:Webhooks:Secret must start with '{SecretPrefix}' followed by base64 (e.g. from 'openssl rand -base64 32').");
        byte[] key;
        try
        {
            key = Convert.FromBase64String(secret[SecretPrefix.Length..]);
        }
        catch (FormatException)
        {
            return (null, $"Corral:Webhooks:Secret is not '{SecretPrefix}' followed by valid base64.");
        }

        return key.Length is < MinKeyLength or > MaxKeyLength
            ? (null, $"Corral:Webhooks:Secret must hold {MinKeyLength} to {MaxKeyLength} bytes of key; it holds {key.Length}.")
            : (key, null);
    }

    /// <summary>Why <paramref name="url"/> is not an acceptable webhook URL (absolute http(s), no user info, not too long); <c>null</c> when it is.</summary>
    public static string? UrlProblem(string? url)
    {
        if (string.IsNullOrEmpty(url))
            return "required.";
        if (url.Length > MaxUrlLength)
            return $"at most {MaxUrlLength} characters.";
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
            return "must be an absolute http or https URL.";
        if (uri.UserInfo.Length > 0)
            return "must not carry a user name or password.";
        // A receiver may decode these into other paths than the one the prefix was checked on.
        if (url.Contains('\\') || url.Contains("%2e", StringComparison.OrdinalIgnoreCase) || url.Contains("%2f", StringComparison.OrdinalIgnoreCase)
            || url.Contains("%5c", StringComparison.OrdinalIgnoreCase))
            return "must not hold backslashes or escaped dots or slashes.";
        return null;
    }

    /// <summary>
    /// Whether a valid <paramref name="url"/> starts with one of <paramref name="prefixes"/>, both as they will be
    /// requested: dot segments resolved (<c>/hook/../evil</c> is <c>/evil</c>), the host in lower case.
    /// </summary>
    public static bool Allowed(string url, IEnumerable<string> prefixes)
    {
        string target = new Uri(url, UriKind.Absolute).AbsoluteUri;
        return prefixes.Any(p => p.Length > 0
            && target.StartsWith(Uri.TryCreate(p, UriKind.Absolute, out var prefix) ? prefix.AbsoluteUri : p, StringComparison.Ordinal));
    }

    /// <summary>The events of a webhook (<c>end</c> when none are named), or why they are not valid.</summary>
    public static (List<string>? Events, string? Problem) Events(IReadOnlyList<string>? events)
    {
        if (events is null || events.Count == 0)
            return ([TaskWebhook.EndEvent], null);
        foreach (string e in events)
        {
            if (e is not (TaskWebhook.StatusEvent or TaskWebhook.EndEvent))
                return (null, $"unknown event '{e}' (use '{TaskWebhook.StatusEvent}' and '{TaskWebhook.EndEvent}').");
        }

        if (!events.Contains(TaskWebhook.EndEvent))
            return (null, $"must include '{TaskWebhook.EndEvent}'.");
        return (events.Contains(TaskWebhook.StatusEvent) ? [TaskWebhook.StatusEvent, TaskWebhook.EndEvent] : [TaskWebhook.EndEvent], null);
    }

    /// <summary>Why the webhook configuration must stop the start (a bad secret, a bad default); <c>null</c> when it is fine.</summary>
    public static string? ConfigurationProblem(WebhookOptions options)
    {
        if (options.Secret is { Length: > 0 } secret && ParseSecret(secret).Problem is { } problem)
            return problem;
        for (int i = 0; i < options.Defaults.Count; i++)
        {
            var d = options.Defaults[i];
            if (UrlProblem(d.Url) is { } bad)
                return $"Corral:Webhooks:Defaults:{i}:Url {bad}";
            if (Events(d.Events).Problem is { } events)
                return $"Corral:Webhooks:Defaults:{i}:Events: {events}";
        }

        if (options.Defaults.Count > 0 && options.Secret is not { Length: > 0 })
            return "Corral:Webhooks:Defaults needs Corral:Webhooks:Secret to sign with.";
        if (options.MaxAttempts < 1 || !(options.MaxAgeSeconds > 0) || !(options.TimeoutSeconds > 0) || !(options.FirstRetrySeconds > 0)
            || !(options.MaxRetrySeconds >= options.FirstRetrySeconds))
            return "Corral:Webhooks: MaxAttempts must be at least 1, MaxAgeSeconds, TimeoutSeconds and FirstRetrySeconds positive, MaxRetrySeconds at least FirstRetrySeconds.";
        return null;
    }

    /// <summary>
    /// When to try again after <paramref name="attempts"/> failed attempts, or <c>null</c> to give up: the wait doubles
    /// from <see cref="WebhookOptions.FirstRetrySeconds"/> up to <see cref="WebhookOptions.MaxRetrySeconds"/>, times
    /// <paramref name="jitter"/> (0.8 to 1.2), and no attempt is due past <see cref="WebhookOptions.MaxAgeSeconds"/> after <paramref name="pendingSince"/>.
    /// </summary>
    public static DateTimeOffset? NextAttempt(int attempts, DateTimeOffset pendingSince, DateTimeOffset now, WebhookOptions options, double jitter)
    {
        if (attempts >= options.MaxAttempts)
            return null;
        double wait = Math.Min(options.FirstRetrySeconds * Math.Pow(2, Math.Max(0, attempts - 1)), options.MaxRetrySeconds) * jitter;
        var next = now + TimeSpan.FromSeconds(wait);
        return next > pendingSince + TimeSpan.FromSeconds(options.MaxAgeSeconds) ? null : next;
    }
}

using System.Text.Json.Nodes;
using System.Text.Json;
using Corral.Agents;
using Corral.Server.Api;
using Corral.Server.Hosting;
using Corral.Server.Internal.Agents;
using Corral.Server.Internal.Storage;
using Microsoft.Extensions.Options;

namespace Corral.Server.Internal.Admission;

/// <summary>
/// Turns a request into a <see cref="TaskPlan"/>, or refuses it, before anything exists: every field is checked
/// here (numbers against documented ranges), the agent's own rules through its adapter, the working directory against
/// the file system. Nothing is created, so a refused request leaves no row, no file and no descriptor.
/// </summary>
internal sealed class Admission(AgentCatalog catalog, IOptions<CorralOptions> options, ServerPaths paths, ServerEnvironment server, Isolation.TaskUsers users)
{
    /// <summary>The largest <c>limits.timeoutSeconds</c> and <c>limits.stallTimeoutSeconds</c>: 7 days.</summary>
    public const double MaxTimeoutSeconds = 7 * 24 * 3600;

    /// <summary>The largest <c>limits.maxTurns</c>.</summary>
    public const int MaxTurns = 10_000;

    /// <summary>The longest <c>idempotencyKey</c>.</summary>
    public const int MaxIdempotencyKeyLength = 200;

    /// <summary>How deep a task's metadata may be nested (the object itself is the first level).</summary>
    public const int MaxMetadataDepth = 32;

    private readonly CorralOptions _options = options.Value;

    /// <summary>A plan for <paramref name="body"/> under the id <paramref name="id"/>, or why not.</summary>
    public (TaskPlan? Plan, Refusal? Refusal) Plan(CreateTaskRequest body, string id)
    {
        var errors = new List<FieldError>();
        string agents = string.Join(", ", catalog.Names.Select(k => $"'{k}'"));
        if (string.IsNullOrEmpty(body.Agent))
            return (null, Refusal.Invalid("agent", $"required ({agents})."));
        if (catalog.Find(body.Agent) is not { } entry)
            return (null, Refusal.Invalid("agent", $"unknown agent '{body.Agent}' (use {agents})."));
        var availability = catalog.Availability(body.Agent);
        if (!availability.Available)
            return (null, new Refusal(RefusalCode.AgentNotAvailable, availability.Reason!));

        var limits = body.Limits;
        CheckSeconds(limits?.TimeoutSeconds, "limits.timeoutSeconds", allowZero: false, errors);
        CheckSeconds(limits?.StallTimeoutSeconds, "limits.stallTimeoutSeconds", allowZero: true, errors);
        if (limits?.MaxTurns is < 1 or > MaxTurns)
            errors.Add(new("limits.maxTurns", $"must be 1 to {MaxTurns}."));
        if (limits?.MaxOutputBytes is { } cap && (cap < 1 || cap > _options.MaxOutputBytes))
            errors.Add(new("limits.maxOutputBytes", $"must be 1 to {_options.MaxOutputBytes} (Corral:MaxOutputBytes)."));
        var resources = Resources(limits, _options.Limits, errors);
        CheckVariables(body.Env, "env", errors);
        CheckVariables(body.Secrets, "secrets", errors);
        foreach (var (key, value) in body.Secrets ?? [])
        {
            if (value is { Length: < Secrets.SecretMask.MinLength })
                errors.Add(new($"secrets.{key}", $"a secret is at least {Secrets.SecretMask.MinLength} characters (shorter ones cannot be told from ordinary text)."));
            if (body.Env?.ContainsKey(key) == true)
                errors.Add(new($"secrets.{key}", "also in env: a variable is one or the other."));
        }

        // Records sit in envelopes of their own (a page of the history, a webhook), within the 64 levels JSON is written with.
        if (body.Metadata is { } metadata && !Within(metadata, MaxMetadataDepth))
            errors.Add(new("metadata", $"nested at most {MaxMetadataDepth} levels."));
        if (body.IdempotencyKey is { Length: 0 or > MaxIdempotencyKeyLength })
            errors.Add(new("idempotencyKey", $"1 to {MaxIdempotencyKeyLength} characters."));
        var webhook = Webhook(body.Webhook, _options.Webhooks, errors);
        string taskDirectory = paths.TaskDirectory(id);
        var (workdir, create) = Workdirs.Resolve(body.Workdir, taskDirectory, paths.WorkspaceRoot, errors);
        if (errors.Count > 0)
            return (null, Refusal.Invalid(errors));

        var own = users.Isolated ? (Path.Combine(taskDirectory, "home"), Path.Combine(taskDirectory, "tmp")) : ((string, string)?)null;
        var (environment, secrets) = TaskEnvironment.Build(id, entry.Options, body.Env, body.Secrets, server, own);
        var mask = Secrets.SecretMask.Create(secrets);
        // The key is kept and shown, so masked; a masked key would no longer find its task (and two keys differing only
        // in a secret would collide).
        if (mask is not null && body.IdempotencyKey is { } idempotencyKey && mask.Apply(idempotencyKey) != idempotencyKey)
            errors.Add(new("idempotencyKey", "must not contain a secret's value."));
        var request = new AgentRequest
        {
            Prompt = body.Prompt,
            Command = body.Command,
            WorkingDirectory = workdir!,
            TaskDirectory = Path.Combine(taskDirectory, "agent"),
            ResumeSessionId = body.ResumeSessionId,
            Model = body.Model,
            MaxTurns = limits?.MaxTurns,
            PermissionMode = body.Permissions?.Mode,
            AllowedTools = body.Permissions?.AllowedTools,
            DisallowedTools = body.Permissions?.DisallowedTools,
            AppendSystemPrompt = body.AppendSystemPrompt,
            McpServers = body.McpServers,
            Environment = environment,
            InheritEnvironment = false, // a task's environment is built, never the server's
        };
        string? newSessionId = entry.Adapter.NewSessionId(request);
        request = request with { NewSessionId = newSessionId };
        foreach (string problem in entry.Adapter.Validate(request))
            errors.Add(Field(problem));
        if (errors.Count > 0)
            return (null, Refusal.Invalid(errors));

        double timeout = limits?.TimeoutSeconds ?? _options.DefaultTimeoutSeconds;
        double stall = limits?.StallTimeoutSeconds ?? _options.DefaultStallTimeoutSeconds;
        // What is kept of the request: secret values never, and nowhere else in it either.
        var kept = body.Secrets is null ? body : body with { Secrets = body.Secrets.ToDictionary(kv => kv.Key, kv => $"[secret:{kv.Key}]") };
        string json = JsonSerializer.Serialize(kept, ApiJson.Options);
        // Hashed before masking (a mask may turn a number equal to a secret into text that is no longer JSON), and masked
        // in its canonical form, so the stored hash is never of a secret.
        string hash = RequestHash.Of(json, mask);
        string stored = mask is null ? json : mask.Apply(json);
        return (new TaskPlan
        {
            Id = id,
            Agent = entry.Adapter.Name,
            Adapter = entry.Adapter,
            Request = request,
            CreateWorkdir = create,
            Timeout = timeout > 0 ? TimeSpan.FromSeconds(Math.Min(timeout, MaxTimeoutSeconds)) : null,
            StallTimeout = stall > 0 ? TimeSpan.FromSeconds(Math.Min(stall, MaxTimeoutSeconds)) : null,
            MaxOutputBytes = limits?.MaxOutputBytes ?? _options.MaxOutputBytes,
            Resources = resources,
            SessionKey = body.ResumeSessionId,
            SessionId = newSessionId ?? body.ResumeSessionId,
            IdempotencyKey = body.IdempotencyKey,
            Metadata = body.Metadata,
            Webhook = webhook,
            RequestJson = stored,
            Mask = mask,
            StoredRequestIncomplete = body.Secrets is { Count: > 0 } || stored != json,
            RequestHash = hash,
        }, null);
    }

    /// <summary>The largest memory limit a task may ask for without a configured maximum: 1 TiB.</summary>
    public const long MaxMemoryMaxMb = 1 << 20;

    /// <summary>The largest process limit without a configured maximum.</summary>
    public const int MaxPidsMax = 1 << 22;

    /// <summary>The tree's limits: the request's within the configured maxima, else the defaults.</summary>
    private static Corral.Processes.ResourceLimits? Resources(TaskLimits? limits, LimitOptions options, List<FieldError> errors)
    {
        long maxMemory = options.MaxMemoryMaxMb ?? MaxMemoryMaxMb;
        int maxPids = options.MaxPidsMax ?? MaxPidsMax;
        double maxCpu = options.MaxCpuMax ?? Environment.ProcessorCount;
        if (limits?.MemoryMaxMb is { } memory && (memory < 1 || memory > maxMemory))
            errors.Add(new("limits.memoryMaxMb", $"must be 1 to {maxMemory} MiB."));
        if (limits?.PidsMax is { } pids && (pids < 1 || pids > maxPids))
            errors.Add(new("limits.pidsMax", $"must be 1 to {maxPids}."));
        if (limits?.CpuMax is { } cpu && (!double.IsFinite(cpu) || cpu < 0.01 || cpu > maxCpu))
            errors.Add(new("limits.cpuMax", $"must be 0.01 to {maxCpu} cores."));
        long? memoryMb = limits?.MemoryMaxMb ?? options.MemoryMaxMb;
        int? pidsMax = limits?.PidsMax ?? options.PidsMax;
        double? cpuMax = limits?.CpuMax ?? options.CpuMax;
        if (memoryMb is null && pidsMax is null && cpuMax is null)
            return null;
        return new Corral.Processes.ResourceLimits
        {
            MemoryMaxBytes = memoryMb is { } mb ? mb << 20 : null,
            PidsMax = pidsMax,
            CpuMax = cpuMax,
        };
    }

    /// <summary>
    /// The task's webhook as admitted (events filled in), or <c>null</c>: an http(s) URL under one of the operator's
    /// prefixes, so that a task cannot make the server reach what only the server can reach.
    /// </summary>
    private static TaskWebhook? Webhook(TaskWebhook? webhook, WebhookOptions options, List<FieldError> errors)
    {
        if (webhook is null)
            return null;
        if (options.Secret is not { Length: > 0 })
        {
            errors.Add(new("webhook", "webhooks are not configured on this server (Corral:Webhooks:Secret)."));
            return null;
        }

        int before = errors.Count;
        if (Webhooks.WebhookRules.UrlProblem(webhook.Url) is { } problem)
            errors.Add(new("webhook.url", problem));
        else if (options.AllowedUrlPrefixes.Count == 0)
            errors.Add(new("webhook.url", "the operator allows no task webhooks on this server (Corral:Webhooks:AllowedUrlPrefixes is empty)."));
        else if (!Webhooks.WebhookRules.Allowed(webhook.Url!, options.AllowedUrlPrefixes))
            errors.Add(new("webhook.url", $"must start with one of the allowed prefixes: {string.Join(", ", options.AllowedUrlPrefixes.Select(p => $"'{p}'"))}."));
        var (events, eventProblem) = Webhooks.WebhookRules.Events(webhook.Events);
        if (eventProblem is not null)
            errors.Add(new("webhook.events", eventProblem));
        return errors.Count > before ? null : new TaskWebhook { Url = webhook.Url, Events = events };
    }

    private static bool Within(JsonNode? node, int levels) => node switch
    {
        JsonObject o => levels > 0 && o.All(p => Within(p.Value, levels - 1)),
        JsonArray a => levels > 0 && a.All(v => Within(v, levels - 1)),
        _ => true,
    };

    private static void CheckVariables(Dictionary<string, string>? variables, string field, List<FieldError> errors)
    {
        foreach (var (key, value) in variables ?? [])
        {
            if (key.Length == 0 || key.Contains('=') || key.Contains('\0') || value is null || value.Contains('\0'))
                errors.Add(new($"{field}.{key}", "names must be non-empty without '=' or NUL, values strings without NUL."));
            else if (TaskEnvironment.Reserved.Contains(key))
                errors.Add(new($"{field}.{key}", "reserved for Corral."));
        }
    }

    /// <summary>A new task id: time-ordered, so ids sort by creation.</summary>
    public static string NewId() => "tsk_" + Guid.CreateVersion7().ToString("N");

    private static void CheckSeconds(double? value, string field, bool allowZero, List<FieldError> errors)
    {
        if (value is not { } v)
            return;
        if (!double.IsFinite(v) || v < 0 || (!allowZero && v == 0) || v > MaxTimeoutSeconds)
            errors.Add(new(field, allowZero ? $"must be zero (off) or positive, at most {MaxTimeoutSeconds}." : $"must be positive, at most {MaxTimeoutSeconds}."));
    }

    /// <summary>An adapter's "field: message" as a field error.</summary>
    private static FieldError Field(string problem)
    {
        int colon = problem.IndexOf(": ", StringComparison.Ordinal);
        return colon > 0 && !problem[..colon].Contains(' ') ? new(problem[..colon], problem[(colon + 2)..]) : new("", problem);
    }
}

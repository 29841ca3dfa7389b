namespace Corral.Client;

/// <summary>The <c>code</c> values of the server's ProblemDetails (<see cref="CorralApiException.Code"/>).</summary>
public static class CorralErrorCodes
{
    /// <summary>400: the request is wrong; <see cref="CorralApiException.Errors"/> names the fields.</summary>
    public const string InvalidRequest = "invalid_request";

    /// <summary>401: no token, or the wrong one.</summary>
    public const string Unauthorized = "unauthorized";

    /// <summary>403: a tokenless server refuses requests from the uids its tasks run as.</summary>
    public const string Forbidden = "forbidden";

    /// <summary>404: no such task.</summary>
    public const string NotFound = "not_found";

    /// <summary>409: the resumed session already has a queued or running task.</summary>
    public const string SessionBusy = "session_busy";

    /// <summary>409: the idempotency key was used for a task with a different body.</summary>
    public const string IdempotencyConflict = "idempotency_conflict";

    /// <summary>409: the task is still queued or running (delete).</summary>
    public const string TaskActive = "task_active";

    /// <summary>413: the body is larger than the server takes.</summary>
    public const string PayloadTooLarge = "payload_too_large";

    /// <summary>415: the body is not JSON.</summary>
    public const string UnsupportedMediaType = "unsupported_media_type";

    /// <summary>429: every slot and the queue are taken (with <c>Retry-After</c>).</summary>
    public const string Busy = "busy";

    /// <summary>503: the agent cannot run on this server (its CLI is missing, or it is turned off).</summary>
    public const string AgentNotAvailable = "agent_not_available";

    /// <summary>503: the server is stopping (with <c>Retry-After</c>).</summary>
    public const string Draining = "draining";

    /// <summary>503: the server's database could not take the task just now (with <c>Retry-After</c>).</summary>
    public const string StorageUnavailable = "storage_unavailable";

    /// <summary>507: the disk of the server's data directory is full.</summary>
    public const string StorageFull = "storage_full";

    /// <summary>500: a bug in the server.</summary>
    public const string InternalError = "internal_error";
}

namespace Corral.Server.Internal.Admission;

/// <summary>Why the server will not do what was asked. The API maps each to an HTTP status; nothing below it knows HTTP.</summary>
internal enum RefusalCode
{
    /// <summary>The request is malformed or names something unusable (fields say what).</summary>
    InvalidRequest,

    /// <summary>The agent is disabled or its CLI is missing (retryable once an operator fixes it).</summary>
    AgentNotAvailable,

    /// <summary>The server is stopping.</summary>
    Draining,

    /// <summary>Every slot and queue place is taken (retryable).</summary>
    Busy,

    /// <summary>The session has a queued or running task already.</summary>
    SessionBusy,

    /// <summary>The idempotency key was used with another body.</summary>
    IdempotencyConflict,

    /// <summary>The data directory's disk is full.</summary>
    StorageFull,

    /// <summary>The task database could not be written in time (retryable).</summary>
    StorageUnavailable,

    /// <summary>No such task.</summary>
    NotFound,

    /// <summary>The task is queued or running, and the operation needs a finished one.</summary>
    TaskActive,
}

/// <summary>One field's problem: the API's field name (e.g. <c>limits.timeoutSeconds</c>) and what is wrong with it.</summary>
internal sealed record FieldError(string Field, string Message)
{
    public override string ToString() => Field.Length == 0 ? Message : $"{Field}: {Message}";
}

/// <summary>A refusal: what kind, for people, and for which fields.</summary>
internal sealed record Refusal(RefusalCode Code, string Message, IReadOnlyList<FieldError>? Errors = null)
{
    public static Refusal Invalid(IReadOnlyList<FieldError> errors) => new(RefusalCode.InvalidRequest, string.Join(" ", errors), errors);

    public static Refusal Invalid(string field, string message) => Invalid([new FieldError(field, message)]);
}

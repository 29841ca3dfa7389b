namespace Corral.Client;

/// <summary>Which tasks <c>GET /v1/tasks</c> lists (newest first).</summary>
public sealed record TaskQuery
{
    /// <summary>Only tasks in this status.</summary>
    public CorralTaskStatus? Status { get; init; }

    /// <summary>Only tasks of this agent session.</summary>
    public string? SessionId { get; init; }

    /// <summary>Tasks per page, 1 to 500 (the server's default is 50).</summary>
    public int? Limit { get; init; }

    /// <summary>Where the page starts: a <see cref="TaskPage.NextCursor"/>.</summary>
    public string? Cursor { get; init; }
}

namespace Corral.Client;

/// <summary>A page of tasks, newest first.</summary>
/// <param name="Items">The tasks.</param>
/// <param name="NextCursor">Pass as <see cref="TaskQuery.Cursor"/> for the next page; <c>null</c> on the last.</param>
public sealed record TaskPage(IReadOnlyList<CorralTask> Items, string? NextCursor);

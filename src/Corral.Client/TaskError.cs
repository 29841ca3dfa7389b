namespace Corral.Client;

/// <summary>Why a task did not succeed.</summary>
/// <param name="Code"><c>agent_error</c>, <c>timeout</c>, <c>stall</c>, <c>cancelled</c>, <c>result_lost</c>, <c>spawn_failed</c>, <c>storage_full</c>, <c>interrupted</c>, …</param>
/// <param name="Message">For people.</param>
public sealed record TaskError(string Code, string? Message);

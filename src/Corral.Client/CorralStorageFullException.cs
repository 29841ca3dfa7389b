namespace Corral.Client;

/// <summary>507 Insufficient Storage: the disk of the server's data directory is full (<c>storage_full</c>).</summary>
/// <param name="problem">The answer.</param>
public sealed class CorralStorageFullException(CorralProblem problem) : CorralApiException(problem);

namespace Corral.Client;

/// <summary>What the server kept of a task's output (stored once, byte for byte, up to the task's output cap).</summary>
/// <param name="StoredBytes">Bytes stored (stdout and stderr together).</param>
/// <param name="DroppedBytes">Bytes read but not stored: past the cap, or after the server's disk filled up.</param>
/// <param name="MaxBytes">The cap that applied.</param>
/// <param name="NonJsonLines">Stdout lines of a JSON-lines agent that were not JSON.</param>
public sealed record TaskOutputSummary(long StoredBytes, long DroppedBytes, long MaxBytes, int NonJsonLines);

namespace Corral.Server.Internal.Isolation;

/// <summary>No uid of the dynamic range can be handed out to a task now: all are in use, held back, or wait for a sweep that failed.</summary>
internal sealed class NoFreeUidException(string message) : Exception(message);

namespace Corral.Client;

/// <summary>
/// No answer from the server: the connection could not be made (after the retries), it dropped before a response,
/// the call timed out, or the circuit breaker is open because recent connections failed (then no connection was tried).
/// </summary>
public sealed class CorralUnreachableException : CorralException
{
    /// <summary>An unreachable server.</summary>
    /// <param name="message">For people.</param>
    /// <param name="circuitOpen">Whether the circuit breaker refused the call.</param>
    /// <param name="retryAfter">When the breaker lets a probe through, if known.</param>
    /// <param name="innerException">The transport's exception.</param>
    public CorralUnreachableException(string message, bool circuitOpen, TimeSpan? retryAfter, Exception? innerException)
        : base(message, innerException)
    {
        CircuitOpen = circuitOpen;
        RetryAfter = retryAfter;
    }

    /// <summary>Whether the circuit breaker refused the call without trying (recent connections to this server failed).</summary>
    public bool CircuitOpen { get; }

    /// <summary>With <see cref="CircuitOpen"/>: how long until the breaker lets a probe through, when known.</summary>
    public TimeSpan? RetryAfter { get; }
}

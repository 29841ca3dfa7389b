namespace Corral.Client;

/// <summary>Something went wrong talking to a Corral server: it refused (<see cref="CorralApiException"/>) or could not be reached (<see cref="CorralUnreachableException"/>).</summary>
public class CorralException : Exception
{
    /// <summary>An exception with a message.</summary>
    /// <param name="message">For people.</param>
    /// <param name="innerException">The cause, if any.</param>
    public CorralException(string message, Exception? innerException = null)
        : base(message, innerException)
    {
    }
}

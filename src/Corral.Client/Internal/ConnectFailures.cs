using System.Net.Sockets;

namespace Corral.Client.Internal;

/// <summary>
/// Which exceptions mean "no connection could be made": the request never reached the server, so it is safe to try
/// again and it says the server is down. A drop after connecting (the response ended, a reset) or a timeout waiting
/// for an answer does not: the server may be alive and busy, and may have acted on the request.
/// </summary>
internal static class ConnectFailures
{
    public static bool IsConnectFailure(Exception? exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            switch (e)
            {
                case HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError or HttpRequestError.NameResolutionError }:
                    return true;
                case HttpRequestException { HttpRequestError: not HttpRequestError.Unknown }:
                    return false; // the connection was made: the response ended, the protocol broke, …
                case SocketException { SocketErrorCode: SocketError.ConnectionRefused or SocketError.HostUnreachable or SocketError.NetworkUnreachable or SocketError.HostNotFound or SocketError.TryAgain or SocketError.AddressNotAvailable }:
                    return true;
                // SocketsHttpHandler.ConnectTimeout: a cancellation whose inner exception is a TimeoutException. (Nothing
                // else inside the pipeline raises that shape: HttpClient.Timeout is off and Polly's attempt timeout
                // becomes a TimeoutRejectedException.)
                case OperationCanceledException { InnerException: TimeoutException }:
                    return true;
            }
        }

        return false;
    }
}

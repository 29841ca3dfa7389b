namespace Corral.Cli.Running;

/// <summary>Copies corral's redirected stdin into the child's stdin pipe and closes the pipe at EOF.</summary>
internal static class InputForwarder
{
    /// <summary>
    /// Starts the copy on a background thread that is never awaited: a child that never reads stdin, or a stdin
    /// that never ends, must not hold up completion, and the thread does not keep corral alive.
    /// </summary>
    public static void Start(Stream source, Stream childInput)
    {
        var thread = new Thread(() => Copy(source, childInput))
        {
            IsBackground = true,
            Name = "corral stdin",
        };
        thread.Start();
    }

    private static void Copy(Stream source, Stream childInput)
    {
        byte[] buffer = new byte[64 * 1024];
        try
        {
            int n;
            while ((n = source.Read(buffer, 0, buffer.Length)) > 0)
                childInput.Write(buffer, 0, n);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException)
        {
            // The child closed its stdin or the tree finished: what it did not take is not needed.
        }
        finally
        {
            try
            {
                childInput.Dispose();
            }
            catch (IOException)
            {
            }
        }
    }
}

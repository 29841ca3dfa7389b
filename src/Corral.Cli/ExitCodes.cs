namespace Corral.Cli;

/// <summary>corral's own exit codes; otherwise <c>corral run</c> exits with the child's status. Shell conventions, as in timeout(1) and env(1).</summary>
internal static class ExitCodes
{
    public const int Success = 0;

    /// <summary>A diagnostic command (<c>holders</c>) could not do its job, e.g. no such process.</summary>
    public const int Failure = 1;

    /// <summary>Bad command-line usage: unknown option, bad duration, missing command.</summary>
    public const int Usage = 2;

    /// <summary>The <c>--timeout</c> passed and the tree was torn down (as timeout(1)).</summary>
    public const int TimedOut = 124;

    /// <summary>corral itself failed: e.g. the report file cannot be written, containment is unavailable.</summary>
    public const int CorralFailure = 125;

    /// <summary>The program exists but cannot be executed.</summary>
    public const int NotExecutable = 126;

    /// <summary>The program was not found.</summary>
    public const int NotFound = 127;

    /// <summary>Base for "killed by signal N": 128 + N.</summary>
    public const int SignalBase = 128;
}

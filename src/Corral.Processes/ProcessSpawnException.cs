namespace Corral.Processes;

/// <summary>Why a tree could not be started.</summary>
public enum SpawnFailure
{
    /// <summary>The program does not exist.</summary>
    FileNotFound,

    /// <summary>The program exists but is not an executable file.</summary>
    NotExecutable,

    /// <summary>The working directory does not exist or cannot be entered.</summary>
    BadWorkingDirectory,

    /// <summary>An argument, environment entry or path contains a NUL character, or is otherwise unusable.</summary>
    InvalidArgument,

    /// <summary>The requested containment is not available on this host.</summary>
    ContainmentUnavailable,

    /// <summary>The input file cannot be opened.</summary>
    BadInputFile,

    /// <summary>The operating system refused the spawn.</summary>
    SystemError,

    /// <summary>
    /// The tree cannot run as the requested <see cref="ProcessSpec.User"/>: no privilege to change identity, or the
    /// spawn path cannot (the posix_spawn fallback, used without Corral's native spawn).
    /// </summary>
    UserUnavailable,

    /// <summary>A limit of <see cref="ResourceLimits"/> marked <see cref="ResourceLimits.Required"/> cannot be enforced on this host.</summary>
    LimitUnavailable,
}

/// <summary>Thrown before anything runs when a tree cannot be started; names the path and the reason.</summary>
public sealed class ProcessSpawnException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ProcessSpawnException(SpawnFailure failure, string path, string message, int errno = 0)
        : base($"Cannot start '{path}': {message}")
    {
        Failure = failure;
        Path = path;
        ErrorCode = errno;
    }

    /// <summary>Why it failed.</summary>
    public SpawnFailure Failure { get; }

    /// <summary>The path concerned (program, working directory, input file or cgroup; for a user, the program).</summary>
    public string Path { get; }

    /// <summary>The errno behind the failure, or 0.</summary>
    public int ErrorCode { get; }
}

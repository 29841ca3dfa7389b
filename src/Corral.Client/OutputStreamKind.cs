namespace Corral.Client;

/// <summary>One of a task's two output streams.</summary>
public enum OutputStreamKind
{
    /// <summary>Standard output.</summary>
    Stdout,

    /// <summary>Standard error.</summary>
    Stderr,
}

namespace Corral.Client;

/// <summary>Tool permissions of a task.</summary>
public sealed record TaskPermissions
{
    /// <summary>The permission mode, e.g. <c>acceptEdits</c> or <c>bypassPermissions</c>.</summary>
    public string? Mode { get; init; }

    /// <summary>Allowed tool rules, e.g. <c>Bash(git *)</c>.</summary>
    public IReadOnlyList<string>? AllowedTools { get; init; }

    /// <summary>Denied tool rules.</summary>
    public IReadOnlyList<string>? DisallowedTools { get; init; }
}

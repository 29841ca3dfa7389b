using Corral.Client;

namespace Corral.Client.Tests.Support;

/// <summary>Tasks of the command agent that tests run: shell one-liners through bash.</summary>
internal static class Commands
{
    public static CreateTaskRequest Bash(string script) => CreateTaskRequest.ForCommand("bash", "-c", script);

    public static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);
}

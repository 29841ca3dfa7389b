using System.Diagnostics;

namespace Corral.Cli.Tests.Support;

/// <summary>
/// A temporary directory for scripts, data and report files. Scripts record the pids of the processes they start
/// in files named <c>*.pid</c>; disposing SIGKILLs those the test read (<see cref="PidAsync"/>) that still live,
/// identified by PID and start time, so a failed test leaves nothing behind and no other test's process is hit.
/// </summary>
internal sealed class Scratch : IDisposable
{
    private readonly List<Proc.Identity?> _seen = [];

    public Scratch() => Path = Directory.CreateTempSubdirectory("corral-cli-test-").FullName;

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>The pid a script wrote to <paramref name="name"/>, once the file holds a whole line.</summary>
    public async Task<int> PidAsync(string name, TimeSpan? deadline = null)
    {
        string path = File(name);
        int pid = 0;
        await Proc.WaitForAsync(() => TryRead(path, out pid), deadline ?? TimeSpan.FromSeconds(30), $"a pid in {name}");
        lock (_seen)
            _seen.Add(Proc.Identify(pid));
        return pid;
    }

    public void Dispose()
    {
        lock (_seen)
            _seen.ForEach(Proc.KillIfAlive);

        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException e)
        {
            Debug.WriteLine($"Could not remove {Path}: {e.Message}");
        }
    }

    private static bool TryRead(string path, out int pid)
    {
        pid = 0;
        try
        {
            string text = System.IO.File.ReadAllText(path);
            return text.EndsWith('\n') && int.TryParse(text.Trim(), out pid) && pid > 0;
        }
        catch (IOException)
        {
            return false;
        }
    }
}

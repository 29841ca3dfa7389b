namespace Corral.Testing.Support;

/// <summary>
/// A temporary directory of a test (scripts, data, report files), deleted with what is in it when the test is done.
/// Scripts may record the pids of processes they start in files; disposing SIGKILLs those the test read
/// (<see cref="PidAsync"/>) that still live, identified by PID and start time, so a failed test leaves nothing behind
/// and no other test's process is hit.
/// </summary>
public sealed class Scratch : IDisposable
{
    private readonly List<Proc.Identity?> _seen = [];

    public Scratch(string prefix = "corral-test-") => Path = Directory.CreateTempSubdirectory(prefix).FullName;

    public string Path { get; }

    public static implicit operator string(Scratch scratch) => scratch.Path;

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
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // something still writes to it (a process the test could not stop): the system's tmp cleaner takes it
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

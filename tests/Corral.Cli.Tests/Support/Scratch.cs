using System.Diagnostics;

namespace Corral.Cli.Tests.Support;

/// <summary>
/// A temporary directory for scripts, data and report files. Scripts record the pids of the processes they start
/// in files named <c>*.pid</c>; disposing SIGKILLs any of them still alive, so a failed test leaves nothing behind.
/// </summary>
internal sealed class Scratch : IDisposable
{
    public Scratch() => Path = Directory.CreateTempSubdirectory("corral-cli-test-").FullName;

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>The pid a script wrote to <paramref name="name"/>, once the file holds a whole line.</summary>
    public async Task<int> PidAsync(string name, TimeSpan? deadline = null)
    {
        string path = File(name);
        int pid = 0;
        await Proc.WaitForAsync(() => TryRead(path, out pid), deadline ?? TimeSpan.FromSeconds(30), $"a pid in {name}");
        return pid;
    }

    public void Dispose()
    {
        foreach (string file in Directory.EnumerateFiles(Path, "*.pid"))
        {
            if (TryRead(file, out int pid))
                Proc.KillIfAlive(pid);
        }

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

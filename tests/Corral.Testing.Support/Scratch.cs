namespace Corral.Testing.Support;

/// <summary>A temporary directory of a test, deleted with what is in it when the test is done with it.</summary>
public sealed class Scratch : IDisposable
{
    public Scratch(string prefix) => Path = Directory.CreateTempSubdirectory(prefix).FullName;

    public string Path { get; }

    public static implicit operator string(Scratch scratch) => scratch.Path;

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // something still writes to it (a process the test could not stop): the system's tmp cleaner takes it
        }
    }
}

namespace Corral.Testing.Support;

/// <summary>Where the repository is, and where tests leave what a person looks at afterwards (gitignored <c>artifacts/</c>).</summary>
public static class Repository
{
    /// <summary>The directory holding <c>Corral.slnx</c>, above the test's binaries.</summary>
    public static string Root
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "Corral.slnx")))
                    return dir.FullName;
            }

            throw new InvalidOperationException("Corral.slnx not found above " + AppContext.BaseDirectory);
        }
    }

    /// <summary><c>artifacts/NAME</c> in the repository, created.</summary>
    public static string Artifacts(string name) => Directory.CreateDirectory(Path.Combine(Root, "artifacts", name)).FullName;
}

namespace Corral.Testing.Support.Guest;

/// <summary>Where guest images are kept (outside git), and the lock that allows one guest at a time on the machine.</summary>
public static class GuestCache
{
    /// <summary>Overrides the cache directory.</summary>
    public const string DirectoryVariable = "CORRAL_GUEST_CACHE";

    /// <summary>Set to 1 (CI does) to fail instead of skipping where a guest cannot be booted.</summary>
    public const string RequiredVariable = "CORRAL_REQUIRE_GUEST";

    /// <summary><c>$CORRAL_GUEST_CACHE</c>, or <c>artifacts/guest</c> in the repository (gitignored).</summary>
    public static string Directory
    {
        get
        {
            if (Environment.GetEnvironmentVariable(DirectoryVariable) is { Length: > 0 } configured)
                return configured;
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "Corral.slnx")))
                    return Path.Combine(dir.FullName, "artifacts", "guest");
            }

            return Path.Combine(Path.GetTempPath(), "corral-guest-cache");
        }
    }

    /// <summary>Whether a guest that cannot be booted is a failure rather than a skip.</summary>
    public static bool Required => Environment.GetEnvironmentVariable(RequiredVariable) == "1";

    /// <summary>Holds the machine-wide guest lock until disposed: two guests would share two host cores.</summary>
    public static async Task<IDisposable> LockAsync(TimeSpan timeout, CancellationToken ct)
    {
        System.IO.Directory.CreateDirectory(Directory);
        string path = Path.Combine(Directory, "guest.lock");
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(500, ct);
            }
        }
    }
}

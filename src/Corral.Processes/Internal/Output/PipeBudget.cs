using System.Globalization;

namespace Corral.Processes.Internal.Output;

/// <summary>
/// How many output pipes this process may grow at once, and to what size. Pipe buffers count against a per-user
/// soft limit (/proc/sys/fs/pipe-user-pages-soft, 64 MiB by default); once a user is over it, every new pipe that
/// user creates gets a single page. So growth is capped at a quarter of that limit (and at 16 pipes), and a grown
/// pipe gives its share back when its pump ends.
/// </summary>
internal static class PipeBudget
{
    private const int PageSize = 4096;
    private static readonly int s_max;
    private static int s_inUse;

    static PipeBudget()
    {
        int maxSize = ReadInt("/proc/sys/fs/pipe-max-size") ?? 1 << 20;
        TargetSize = Math.Min(1 << 20, maxSize);
        long softPages = ReadInt("/proc/sys/fs/pipe-user-pages-soft") ?? 16384;
        long budgetBytes = softPages == 0 ? long.MaxValue : softPages * PageSize / 4;
        s_max = TargetSize < 256 * 1024 ? 0 : (int)Math.Min(16, budgetBytes / TargetSize);
    }

    /// <summary>The size a full pipe is grown to: 1 MiB, or less if pipe-max-size is lower.</summary>
    public static int TargetSize { get; }

    public static bool TryAcquire()
    {
        while (true)
        {
            int current = Volatile.Read(ref s_inUse);
            if (current >= s_max)
                return false;
            if (Interlocked.CompareExchange(ref s_inUse, current + 1, current) == current)
                return true;
        }
    }

    public static void Release() => Interlocked.Decrement(ref s_inUse);

    private static int? ReadInt(string path)
    {
        try
        {
            return int.TryParse(File.ReadAllText(path).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int v) ? v : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}

using System.Text;

namespace Corral.Testing.Support.Guest;

/// <summary>
/// The load order of kernel modules, from each module's own <c>depends=</c> field (a Debian kernel package ships no
/// modules.dep: depmod runs at install time).
/// </summary>
public static class KernelModules
{
    /// <summary>Every <c>.ko</c> under <paramref name="modulesRoot"/> by module name (dashes as underscores, as the kernel names them).</summary>
    public static Dictionary<string, string> Index(string modulesRoot) =>
        System.IO.Directory.EnumerateFiles(modulesRoot, "*.ko", SearchOption.AllDirectories)
            .GroupBy(f => Path.GetFileNameWithoutExtension(f).Replace('-', '_'))
            .ToDictionary(g => g.Key, g => g.First());

    /// <summary>The <c>depends=</c> list of a module file's .modinfo section.</summary>
    public static IReadOnlyList<string> Depends(byte[] module)
    {
        ReadOnlySpan<byte> key = "\0depends="u8;
        int at = module.AsSpan().IndexOf(key);
        if (at < 0)
            return [];
        var rest = module.AsSpan(at + key.Length);
        int end = rest.IndexOf((byte)0);
        string list = Encoding.ASCII.GetString(end < 0 ? rest : rest[..end]);
        return list.Split(',', StringSplitOptions.RemoveEmptyEntries);
    }

    /// <summary><paramref name="wanted"/> and everything they depend on, each after its dependencies. A pure function of the dependency map.</summary>
    public static IReadOnlyList<string> LoadOrder(IEnumerable<string> wanted, Func<string, IReadOnlyList<string>> dependsOn)
    {
        var order = new List<string>();
        var visiting = new HashSet<string>();
        var done = new HashSet<string>();
        void Visit(string module)
        {
            if (done.Contains(module))
                return;
            if (!visiting.Add(module))
                throw new InvalidOperationException($"module dependency cycle at {module}");
            foreach (string dependency in dependsOn(module))
                Visit(dependency);
            visiting.Remove(module);
            done.Add(module);
            order.Add(module);
        }

        foreach (string module in wanted)
            Visit(module);
        return order;
    }
}

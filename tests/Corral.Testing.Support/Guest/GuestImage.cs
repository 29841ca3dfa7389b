using System.Security.Cryptography;
using System.Text;

namespace Corral.Testing.Support.Guest;

/// <summary>
/// What a guest boots: a stock Debian kernel (downloaded with apt-get, unpacked with dpkg-deb, decompressed once) and
/// a small busybox initramfs with the modules for 9p and overlayfs. Cached outside git, so only the first run on a
/// machine pays for it (about 17 s); see ../shared/reference/vm-cgroup-v2.md for the measurements behind the choices.
/// </summary>
public sealed record GuestImage(string Kernel, string Initramfs)
{
    /// <summary>Virtio transport, 9p (the shares) and overlayfs (a writable /etc); their dependencies are found from the modules.</summary>
    private static readonly string[] Modules = ["virtio_pci", "9pnet_virtio", "9p", "overlay"];

    private static readonly TimeSpan Step = TimeSpan.FromMinutes(5);

    private static readonly byte[] ElfMagic = [0x7F, (byte)'E', (byte)'L', (byte)'F'];

    /// <summary>
    /// The kernel and initramfs in <paramref name="cacheDirectory"/>, made (and the tools installed, when running as
    /// root with apt) if missing. Throws <see cref="GuestUnavailableException"/> when that is not possible here.
    /// </summary>
    public static async Task<GuestImage> PrepareAsync(string cacheDirectory, CancellationToken ct)
    {
        await EnsureToolsAsync(ct);
        string package = await KernelPackageAsync(ct);
        string directory = Path.Combine(cacheDirectory, package);
        string kernel = Path.Combine(directory, "vmlinux");
        string modules = Path.Combine(directory, "modules");
        if (!File.Exists(kernel) || !File.Exists(Path.Combine(modules, "order")))
            await UnpackKernelAsync(package, directory, ct);
        string initramfs = BuildInitramfs(directory, modules);
        return new GuestImage(kernel, initramfs);
    }

    /// <summary>QEMU and a static busybox, installed with apt-get when they are missing and this is root; otherwise the reason.</summary>
    private static async Task EnsureToolsAsync(CancellationToken ct)
    {
        var missing = new List<string>();
        if (Tool.Which("qemu-system-x86_64") is null)
            missing.Add("qemu-system-x86");
        if (!IsStatic("/bin/busybox"))
            missing.Add("busybox-static");
        if (Tool.Which("xz") is null)
            missing.Add("xz-utils");
        if (missing.Count == 0)
            return;
        if (Environment.UserName != "root" || Tool.Which("apt-get") is not { } apt)
            throw new GuestUnavailableException($"{string.Join(", ", missing)} not installed, and they cannot be installed here (apt-get as root)");
        var install = await Tool.RunAsync(apt, ["install", "-y", "-qq", "--no-install-recommends", .. missing], Step, ct);
        if (install.Outcome.ExitCode != 0)
        {
            await Tool.RequireAsync(apt, ["update", "-qq"], Step, ct);
            await Tool.RequireAsync(apt, ["install", "-y", "-qq", "--no-install-recommends", .. missing], Step, ct);
        }
    }

    /// <summary>Whether <paramref name="path"/> is an ELF executable without a program interpreter (statically linked).</summary>
    private static bool IsStatic(string path)
    {
        if (!File.Exists(path))
            return false;
        byte[] elf = File.ReadAllBytes(path);
        if (elf.Length < 64 || !elf.AsSpan(0, 4).SequenceEqual(ElfMagic))
            return false;
        long phoff = BitConverter.ToInt64(elf, 0x20);
        int phentsize = BitConverter.ToUInt16(elf, 0x36), phnum = BitConverter.ToUInt16(elf, 0x38);
        for (int i = 0; i < phnum; i++)
        {
            long at = phoff + (long)i * phentsize;
            if (at + 4 <= elf.Length && BitConverter.ToUInt32(elf, (int)at) == 3)
                return false; // PT_INTERP
        }

        return true;
    }

    /// <summary>The kernel package the distribution's default (<c>linux-image-amd64</c>) points at, e.g. <c>linux-image-6.1.0-57-amd64</c>.</summary>
    private static async Task<string> KernelPackageAsync(CancellationToken ct)
    {
        if (Tool.Which("apt-cache") is not { } aptCache || Tool.Which("apt-get") is not { } apt || Tool.Which("dpkg-deb") is null)
            throw new GuestUnavailableException("no apt-cache, apt-get and dpkg-deb to fetch a kernel package with");
        for (int attempt = 0; ; attempt++)
        {
            var depends = await Tool.RunAsync(aptCache, ["depends", "linux-image-amd64"], Step, ct);
            string? package = depends.StandardOutput.Split('\n').Select(l => l.Trim())
                .Where(l => l.StartsWith("Depends: linux-image-", StringComparison.Ordinal))
                .Select(l => l["Depends: ".Length..].Trim()).FirstOrDefault();
            if (package is not null)
                return package;
            if (attempt > 0 || Environment.UserName != "root")
                throw new GuestUnavailableException("apt knows no linux-image-amd64 package: " + Tool.Tail(depends.StandardError));
            await Tool.RequireAsync(apt, ["update", "-qq"], Step, ct);
        }
    }

    /// <summary>Downloads and unpacks the package, keeps the decompressed kernel and the modules the initramfs loads, and drops the rest.</summary>
    private static async Task UnpackKernelAsync(string package, string directory, CancellationToken ct)
    {
        Directory.CreateDirectory(directory);
        if (!Directory.EnumerateFiles(directory, package + "_*.deb").Any())
            await Tool.RequireAsync(Tool.Which("apt-get")!, ["download", "-o", "APT::Sandbox::User=root", package], Step, ct, directory);
        string deb = Directory.EnumerateFiles(directory, package + "_*.deb").First();
        string root = Path.Combine(directory, "root");
        if (Directory.Exists(root))
            Directory.Delete(root, recursive: true);
        await Tool.RequireAsync(Tool.Which("dpkg-deb")!, ["-x", deb, root], Step, ct);
        try
        {
            string vmlinuz = Directory.EnumerateFiles(Path.Combine(root, "boot"), "vmlinuz-*").Single();
            await DecompressKernelAsync(vmlinuz, Path.Combine(directory, "vmlinux"), ct);

            var index = KernelModules.Index(Path.Combine(root, "lib", "modules"));
            var order = KernelModules.LoadOrder(Modules, m => KernelModules.Depends(File.ReadAllBytes(
                index.TryGetValue(m, out string? file) ? file : throw new GuestUnavailableException($"{package} has no module {m}"))));
            string modules = Path.Combine(directory, "modules");
            Directory.CreateDirectory(modules);
            foreach (string module in order)
                File.Copy(index[module], Path.Combine(modules, module + ".ko"), overwrite: true);
            File.WriteAllLines(Path.Combine(modules, "order"), order);
            File.Delete(deb);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    /// <summary>
    /// The uncompressed kernel inside a bzImage (the way the kernel's extract-vmlinux does it: find the xz stream's
    /// magic and decompress from there): decompressing under TCG at every boot would cost seconds. QEMU boots the
    /// ELF through its PVH entry point.
    /// </summary>
    private static async Task DecompressKernelAsync(string vmlinuz, string destination, CancellationToken ct)
    {
        byte[] image = await File.ReadAllBytesAsync(vmlinuz, ct);
        int at = image.AsSpan().IndexOf(new byte[] { 0xFD, (byte)'7', (byte)'z', (byte)'X', (byte)'Z', 0 });
        if (at < 0)
            throw new GuestUnavailableException($"{vmlinuz} holds no xz-compressed kernel");
        string stream = destination + ".xz";
        await File.WriteAllBytesAsync(stream, image[at..], ct);
        string partial = destination + ".partial";
        try
        {
            await using (var output = File.Create(partial))
            {
                // xz complains about the data after the stream (exit 1): what matters is the ELF it wrote.
                await Tool.RunAsync(Tool.Which("xz")!, ["-dc", stream], Step, ct, stdout: Corral.Processes.OutputTarget.ToStream(output));
            }

            byte[] head = new byte[4];
            await using (var check = File.OpenRead(partial))
                check.ReadExactly(head);
            if (!head.AsSpan().SequenceEqual(ElfMagic) || new FileInfo(partial).Length < 1 << 20)
                throw new GuestUnavailableException($"decompressing {vmlinuz} gave no ELF kernel");
            File.Move(partial, destination, overwrite: true);
        }
        finally
        {
            File.Delete(stream);
            File.Delete(partial);
        }
    }

    /// <summary>
    /// The initramfs: busybox, the modules, and an /init that mounts the job share and hands over to the job's own
    /// guest-init.sh (so one cached image serves every run). /bin, /sbin, /lib and /lib64 point into /usr as on a
    /// merged-/usr host; anything else the guest needs comes from the shares.
    /// </summary>
    private static string BuildInitramfs(string directory, string modules)
    {
        var order = File.ReadAllLines(Path.Combine(modules, "order"));
        var cpio = new Cpio();
        foreach (string dir in new[] { "proc", "sys", "dev", "tmp", "run", "usr", "etc", "job", "mnt", "modules", ".lower", ".lower/etc", ".rw" })
            cpio.Directory(dir);
        foreach (string link in new[] { "bin", "sbin", "lib", "lib64" })
        {
            string? target = new FileInfo("/" + link).LinkTarget;
            if (target is not null)
                cpio.Symlink(link, target.TrimStart('/'));
            else
                cpio.Directory(link);
        }

        cpio.File("busybox", File.ReadAllBytes("/bin/busybox"));
        foreach (string module in order)
            cpio.File($"modules/{module}.ko", File.ReadAllBytes(Path.Combine(modules, module + ".ko")), mode: 0x1A4);
        cpio.File("modules/order", Encoding.ASCII.GetBytes(string.Join('\n', order) + "\n"), mode: 0x1A4);
        cpio.File("init", Encoding.ASCII.GetBytes(Init));
        byte[] bytes = cpio.ToBytes();

        string path = Path.Combine(directory, $"initramfs-{Convert.ToHexString(SHA256.HashData(bytes))[..12].ToLowerInvariant()}.cpio");
        if (!File.Exists(path))
        {
            File.WriteAllBytes(path + ".partial", bytes);
            File.Move(path + ".partial", path, overwrite: true);
        }

        return path;
    }

    private const string Init = """
        #!/busybox sh
        B=/busybox
        $B mount -t proc proc /proc
        $B mount -t sysfs sysfs /sys
        $B mount -t devtmpfs devtmpfs /dev
        for m in $($B cat /modules/order); do $B insmod /modules/$m.ko || echo "corral-guest: insmod $m failed"; done
        if $B mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 job /job; then
          $B sh /job/guest-init.sh
        else
          echo "corral-guest: the job share did not mount"
        fi
        $B sync
        $B poweroff -f

        """;
}

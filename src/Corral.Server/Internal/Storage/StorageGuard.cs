using Corral.Server.Hosting;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Corral.Server.Internal.Storage;

/// <summary>
/// Keeps the data directory's disk from taking the server down with it. A reserve file holds some space back; the
/// first "disk full" anywhere gives it up, so the final records of running tasks (and the database) can still be
/// written, and the server stops taking new tasks (<c>storage_full</c>) until there is room again, when the reserve
/// is put back.
/// </summary>
internal sealed class StorageGuard : BackgroundService
{
    private static readonly TimeSpan CheckInterval = TimeSpan.FromSeconds(1);

    private readonly ServerPaths _paths;
    private readonly TimeProvider _time;
    private readonly ILogger<StorageGuard> _logger;
    private readonly long _minFree;
    private readonly long _reserve;
    private volatile bool _full;

    public StorageGuard(ServerPaths paths, IOptions<CorralOptions> options, TimeProvider time, ILogger<StorageGuard> logger)
    {
        _paths = paths;
        _time = time;
        _logger = logger;
        _minFree = Math.Max(0, options.Value.MinFreeDiskMb) << 20;
        _reserve = Math.Max(0, options.Value.DiskReserveMb) << 20;
        Files.CreatePrivateDirectory(paths.DataDirectory);
        Files.Restrict(paths.DataDirectory, paths.DirectoryMode);
        TryPutReserveBack();
    }

    /// <summary>Whether new tasks must be refused: the disk filled up, or less than the minimum is free.</summary>
    public bool IsFull => _full || Interop.Libc.AvailableBytes(_paths.DataDirectory) is { } free && free < _minFree;

    /// <summary>Something could not be written because the disk is full: give the reserve up and refuse new tasks.</summary>
    public void ReportFull()
    {
        if (_full)
            return;
        _full = true;
        try
        {
            File.Delete(_paths.Reserve);
        }
        catch (IOException)
        {
        }

        _logger.LogError("The disk of {Data} is full: new tasks are refused (storage_full) until there is room again", _paths.DataDirectory);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(CheckInterval, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                if (_full && Interop.Libc.AvailableBytes(_paths.DataDirectory) is { } free && free >= _minFree + _reserve && TryPutReserveBack())
                {
                    _full = false;
                    _logger.LogInformation("The disk of {Data} has room again: new tasks are accepted", _paths.DataDirectory);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private bool TryPutReserveBack()
    {
        if (_reserve == 0)
            return true;
        try
        {
            // Real blocks (written zeros, not a sparse file), so that deleting it really frees space.
            using var file = Files.OpenPrivate(_paths.Reserve, FileMode.OpenOrCreate);
            long length = RandomAccess.GetLength(file);
            var zeros = new byte[1 << 20];
            for (long at = length - length % zeros.Length; at < _reserve; at += zeros.Length)
                RandomAccess.Write(file, zeros.AsSpan(0, (int)Math.Min(zeros.Length, _reserve - at)), at);
            return true;
        }
        catch (IOException e) when (Files.IsOutOfSpace(e))
        {
            try
            {
                File.Delete(_paths.Reserve);
            }
            catch (IOException)
            {
            }

            _full = true;
            return false;
        }
    }
}

using Corral.Server.Hosting;
using Corral.Server.Internal.Scheduling;
using Corral.Server.Internal.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Corral.Server.Internal.Retention;

/// <summary>Deletes finished tasks older than <c>Corral:RetentionDays</c>, with their files, at start-up and then periodically.</summary>
internal sealed class RetentionService(ITaskStore store, Scheduler scheduler, IOptions<CorralOptions> options, TimeProvider time,
    ILogger<RetentionService> logger) : BackgroundService
{
    private const int Batch = 500;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var o = options.Value;
        if (o.RetentionDays <= 0)
            return;
        var every = TimeSpan.FromMinutes(Math.Max(o.RetentionSweepMinutes, 0.01));
        try
        {
            while (true)
            {
                await SweepAsync(TimeSpan.FromDays(o.RetentionDays), stoppingToken).ConfigureAwait(false);
                await Task.Delay(every, time, stoppingToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>Deletes every finished task that ended more than <paramref name="age"/> ago; returns how many.</summary>
    public async Task<int> SweepAsync(TimeSpan age, CancellationToken cancellationToken)
    {
        int deleted = 0;
        var cutoff = time.GetUtcNow() - age;
        while (true)
        {
            var ids = await store.ListEndedBeforeAsync(cutoff, Batch, cancellationToken).ConfigureAwait(false);
            int before = deleted;
            foreach (string id in ids)
            {
                if (await scheduler.DeleteAsync(id, cancellationToken).ConfigureAwait(false) is null)
                    deleted++;
            }

            if (ids.Count < Batch || deleted == before)
                break;
        }

        if (deleted > 0)
            logger.LogInformation("Retention: deleted {Count} task(s) that ended before {Cutoff:O}", deleted, cutoff);
        return deleted;
    }
}

using System.Net;
using System.Net.Sockets;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Azure.Storage.Blobs.Specialized;
using RAE.Grains.Storage;

namespace RAE.Cluster.Tests.Storage;

[Collection(AzuriteCollection.Name)]
public sealed class AzureBlobStoreTests(AzuriteFixture azurite) : BlobStoreContractTests
{
    private const int TestBlockSize = 2 * 1024 * 1024;
    private readonly string containerName = $"test-{Guid.NewGuid():N}";

    private BlobContainerClient RawContainer => new(azurite.ConnectionString, containerName);

    protected override IBlobStore CreateStore() => new AzureBlobStore(new AzureBlobStoreOptions
    {
        ConnectionString = azurite.ConnectionString,
        ContainerName = containerName,
        BlockSizeBytes = TestBlockSize,
    });

    protected override IBlobStore CreateUnreachableStore(BlobStoreRetryOptions retry) => new AzureBlobStore(new AzureBlobStoreOptions
    {
        ConnectionString = AzureBlobStoreOptions.AzuriteConnectionString("127.0.0.1", UnusedLoopbackPort()),
        ContainerName = containerName,
        StartupTimeout = TimeSpan.FromSeconds(2),
        RequestTimeout = TimeSpan.FromSeconds(5),
        Retry = retry,
    });

    protected override async Task CorruptStoredBytesAsync(string path)
    {
        var blob = RawContainer.GetBlobClient(path);
        var stored = await blob.DownloadContentAsync();
        var bytes = stored.Value.Content.ToArray();
        bytes[bytes.Length / 3] ^= 0x5A;
        await blob.UploadAsync(BinaryData.FromBytes(bytes), new BlobUploadOptions { Metadata = stored.Value.Details.Metadata });
    }

    protected override Task KillWriterMidUploadAsync(string path, int totalBytes) =>
        TornWriterProcess.RunAndKillMidUploadAsync("azure", path, totalBytes, stallAfter: totalBytes / 2,
            azurite.ConnectionString, containerName, $"{TestBlockSize}");

    protected override async Task AssertUncommittedUploadLeftBehindAsync(string path)
    {
        var blocks = (await RawContainer.GetBlockBlobClient(path).GetBlockListAsync(BlockListTypes.All)).Value;
        Assert.True(blocks.UncommittedBlocks.Count() >= 2,
            $"the killed writer should have staged blocks, found {blocks.UncommittedBlocks.Count()} uncommitted");
    }

    public override async Task DisposeAsync() => await RawContainer.DeleteIfExistsAsync();

    [Fact]
    public async Task Start_up_check_creates_the_container()
    {
        Assert.True((await RawContainer.ExistsAsync()).Value);

        await Store.EnsureAvailableAsync();
    }

    [Fact]
    public async Task Large_put_is_committed_as_several_blocks_with_the_checksum_in_metadata()
    {
        var data = TestBytes.Deterministic(LargeObjectBytes, seed: 30);

        var put = await Store.PutAsync("checkpoints/big.safetensors", new ForwardOnlyStream(data));

        var blob = RawContainer.GetBlockBlobClient("checkpoints/big.safetensors");
        var blocks = (await blob.GetBlockListAsync(BlockListTypes.All)).Value;
        Assert.Equal((LargeObjectBytes + TestBlockSize - 1) / TestBlockSize, blocks.CommittedBlocks.Count());
        Assert.Empty(blocks.UncommittedBlocks);
        Assert.Equal(put.Sha256, (await blob.GetPropertiesAsync()).Value.Metadata["rae_sha256"]);
    }

    [Fact]
    public async Task Blob_written_by_another_tool_is_refused_as_unverifiable()
    {
        await RawContainer.GetBlobClient("foreign.bin").UploadAsync(BinaryData.FromBytes([1, 2, 3]));

        var refused = await Assert.ThrowsAsync<BlobCorruptedException>(() => Store.GetAsync("foreign.bin"));

        Assert.Contains("rae_sha256", refused.Message);
    }

    [Fact]
    public async Task Pinned_service_version_talks_to_azurite_too()
    {
        var pinned = new AzureBlobStore(new AzureBlobStoreOptions
        {
            ConnectionString = azurite.ConnectionString,
            ContainerName = containerName,
            ServiceVersion = BlobClientOptions.ServiceVersion.V2025_01_05,
        });

        await pinned.PutBytesAsync("pinned.bin", TestBytes.Deterministic(1000, 31));

        Assert.Equal(TestBytes.Deterministic(1000, 31), (await Store.GetAsync("pinned.bin")).Data);
    }

    private static int UnusedLoopbackPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

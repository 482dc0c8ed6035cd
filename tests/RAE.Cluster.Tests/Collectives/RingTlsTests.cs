using System.Net;
using System.Net.Sockets;
using System.Security.Authentication;
using RAE.GrainInterfaces;
using RAE.Grains.Collectives;
using RAE.Grains.Collectives.Ring;
using RAE.Silo.Security;

namespace RAE.Cluster.Tests.Collectives;

/// <summary>The ring over mutual TLS with the cluster's development certificates, as a silo running cluster TLS sets it up.</summary>
[Collection(ClusterCollection.Name)]
public sealed class RingTlsTests(ClusterFixture fixture) : IDisposable
{
    private const int Length = 2500;
    private readonly string _folder = Path.Combine(Path.GetTempPath(), "rae-ring-tls-" + Guid.NewGuid().ToString("N"));

    [Fact]
    public async Task TwoRanksOverMutualTlsSumExactlyWhileAForeignCertificateAndAPlainPeerAreRefused()
    {
        using var cluster = Credentials("cluster");
        using var foreign = Credentials("foreign");
        var group = await NewGroupAsync(TimeSpan.FromSeconds(30));
        var ranks = Enumerable.Range(0, 2).Select(rank => NewRank(group, rank, RingTlsOf(cluster))).ToArray();
        try
        {
            // Queued at rank 1's listener before rank 0 connects, so rank 1 handles them first. The foreign peer trusts
            // anything, so only rank 1's check of its certificate can refuse it.
            var endpoint = ranks[1].LocalEndpoint!;
            // Under TLS 1.3 the client's handshake may finish before the server has checked its certificate; the refusal
            // then arrives on the first read, so the peer also offers the hello (with the real token, which it cannot know).
            var foreignPeer = Connected(endpoint, socket =>
            {
                using var stream = new RingTls(foreign.Certificate, _ => true).AuthenticateAsClient(socket, TimeSpan.FromSeconds(20));
                return RingHandshake.Offer(stream, new RingHello(group, new byte[16], 0, 2));
            });
            var plainPeer = Connected(endpoint, socket =>
            {
                using var stream = new NetworkStream(socket, ownsSocket: true);
                return RingHandshake.Offer(stream, new RingHello(group, new byte[16], 0, 2));
            });
            var vectors = Vectors(seed: 3);

            var sums = await Task.WhenAll(ranks.Select(c => c.AllReduceAsync(vectors[c.Rank], ReduceOperation.Sum)));

            var expected = vectors[0].Zip(vectors[1], (a, b) => a + b).ToArray();
            foreach (var sum in sums) Assert.Equal(expected, sum);
            var refused = await Assert.ThrowsAnyAsync<Exception>(() => foreignPeer);
            Assert.True(refused is AuthenticationException or IOException, refused.ToString());
            await Assert.ThrowsAnyAsync<IOException>(() => plainPeer); // TLS expected: the plain hello gets no answer
        }
        finally
        {
            foreach (var rank in ranks) rank.Dispose();
        }
    }

    [Fact]
    public async Task ARankWithAForeignCertificateCannotJoinTheRing()
    {
        using var cluster = Credentials("cluster");
        using var foreign = Credentials("foreign");
        var group = await NewGroupAsync(TimeSpan.FromSeconds(5));
        RingCollectiveCommunicator[] ranks = [NewRank(group, 0, new RingTls(foreign.Certificate, _ => true)), NewRank(group, 1, RingTlsOf(cluster))];
        try
        {
            var vectors = Vectors(seed: 4);
            var attempts = ranks.Select(c => c.AllReduceAsync(vectors[c.Rank], ReduceOperation.Sum)).ToList();
            var errors = new List<CollectiveException>();
            foreach (var attempt in attempts) errors.Add(await Assert.ThrowsAsync<CollectiveException>(() => attempt.WaitAsync(TimeSpan.FromSeconds(60))));
            Assert.Contains(errors, e => e.Message.Contains("TLS handshake failed", StringComparison.Ordinal));
        }
        finally
        {
            foreach (var rank in ranks) rank.Dispose();
        }
    }

    public void Dispose()
    {
        if (Directory.Exists(_folder)) Directory.Delete(_folder, recursive: true);
    }

    /// <summary>As the silo does it: the silo certificate, trusted peers are those the authority issued.</summary>
    private static RingTls RingTlsOf(ClusterTlsCredentials credentials) => new(credentials.Certificate, credentials.IsIssuedByAuthority);

    private ClusterTlsCredentials Credentials(string name)
    {
        var files = DevelopmentCertificates.Create(Path.Combine(_folder, name));
        return ClusterTlsCredentials.Load(files.SiloCertificatePath, File.ReadAllText(files.PasswordPath), files.AuthorityPath);
    }

    private async Task<string> NewGroupAsync(TimeSpan timeout)
    {
        var key = "ring-tls-test-" + Guid.NewGuid().ToString("N");
        await fixture.Grains.GetGrain<ICollectiveGroupGrain>(key).Configure(2, timeout);
        return key;
    }

    private RingCollectiveCommunicator NewRank(string group, int rank, RingTls tls) =>
        new(fixture.Grains, group, rank, 2, IPAddress.Loopback, bucketElements: 1000, pieceElements: 150, tls: tls);

    /// <summary>Connects at once (queued in the listener's backlog), then runs <paramref name="talk"/> on a worker thread.</summary>
    private static Task<T> Connected<T>(RingEndpoint endpoint, Func<Socket, T> talk)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { ReceiveTimeout = 20_000, SendTimeout = 20_000 };
        socket.Connect(endpoint.Host, endpoint.Port);
        return Task.Run(() =>
        {
            using (socket) return talk(socket);
        });
    }

    private static float[][] Vectors(int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, 2).Select(_ => Enumerable.Range(0, Length)
            .Select(_ => (float)((random.NextDouble() - 0.5) * Math.Pow(10, random.Next(-3, 8)))).ToArray()).ToArray();
    }
}

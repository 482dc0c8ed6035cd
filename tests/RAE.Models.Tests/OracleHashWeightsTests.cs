using RAE.Models.Verification;

namespace RAE.Models.Tests;

public sealed class OracleHashWeightsTests
{
    private const ulong LpipsSeed = 0x6c70697073766767UL;

    [Fact]
    public void Seed_zero_tensor_zero_is_the_standard_splitmix64_stream()
    {
        Assert.Equal(0xE220A8397B1DCDAFUL, OracleHashWeights.Hash(0, 0, 0));
        Assert.Equal(0x6E789E6AA1B965F4UL, OracleHashWeights.Hash(0, 0, 1));
    }

    [Theory]
    [InlineData(0, 0x798785cd57231bfbUL, 0xbba91058u)]
    [InlineData(1, 0x0ddb104b6d633b4bUL, 0xbdba6598u)]
    [InlineData(2, 0xcb12dcbafc59a654UL, 0x3d753089u)]
    [InlineData(3, 0x88f01e850ccaa270UL, 0x3be987adu)]
    public void Reproduces_the_worked_example_of_the_fixtures_readme(long i, ulong z, uint valueBits)
    {
        var scale = BitConverter.UInt32BitsToSingle(0x3dd105ec);
        Assert.Equal(z, OracleHashWeights.Hash(LpipsSeed, 1, i));
        Assert.Equal(valueBits, BitConverter.SingleToUInt32Bits(OracleHashWeights.Value(LpipsSeed, 1, i, scale)));
    }

    [Fact]
    public void Every_generated_lpips_tensor_matches_its_recorded_sha256()
    {
        var referenceCase = ReferenceCase.Open(Fixtures.Case("lpips_vgg"));
        var generated = OracleHashWeights.Generate(referenceCase);
        try
        {
            Assert.Equal(13, generated.Count);
            Assert.Equal([64L, 64, 3, 3], generated["net.slice1.2.weight"].shape);
        }
        finally
        {
            foreach (var tensor in generated.Values) tensor.Dispose();
        }
    }

    [Fact]
    public void A_wrong_recorded_hash_is_an_error_naming_the_tensor()
    {
        var folder = Directory.CreateTempSubdirectory("oracle-hash-").FullName;
        try
        {
            var json = File.ReadAllText(Path.Combine(Fixtures.Case("lpips_vgg"), "case.json"))
                .Replace("ebbde19384edab3c39f095165cc4c5e67070e4e4c0feb08bf6ac5d8ded6b4197", new string('0', 64));
            File.WriteAllText(Path.Combine(folder, "case.json"), json);
            var error = Assert.Throws<InvalidDataException>(() => OracleHashWeights.Generate(ReferenceCase.Open(folder)));
            Assert.Contains("net.slice1.2.weight", error.Message);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}

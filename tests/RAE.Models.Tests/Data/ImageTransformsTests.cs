using RAE.Models.Data;

namespace RAE.Models.Tests.Data;

public sealed class ImageTransformsTests
{
    [Fact]
    public void Adm_center_crop_halves_with_box_then_bicubic_to_the_shorter_side_then_centres()
    {
        var image = Gradient(512, 300);

        var cropped = ImageTransforms.AdmCenterCrop(image, 128);

        // 512x300 -> BOX halving (300 >= 256) -> 256x150; 150 < 256 stops; bicubic to round(256·128/150)=218 x 128; crop x 45.
        var halved = PilResample.Resize(image, 256, 150, PilFilter.Box);
        var expected = PilResample.Resize(halved, 218, 128, PilFilter.Bicubic).Crop(45, 0, 128, 128);
        Assert.Equal(128, cropped.Width);
        Assert.Equal(128, cropped.Height);
        Assert.Equal(expected.Pixels, cropped.Pixels);
    }

    [Fact]
    public void Adm_center_crop_rounds_sizes_half_to_even_like_python()
    {
        // 7x4 to 6: scale 1.5, width 10.5 -> Python round gives 10 (away-from-zero would give 11); crop x (10-6)/2 = 2.
        var image = Gradient(7, 4);

        var cropped = ImageTransforms.AdmCenterCrop(image, 6);

        var expected = PilResample.Resize(image, 10, 6, PilFilter.Bicubic).Crop(2, 0, 6, 6);
        var awayFromZero = PilResample.Resize(image, 11, 6, PilFilter.Bicubic).Crop(2, 0, 6, 6);
        Assert.Equal(expected.Pixels, cropped.Pixels);
        Assert.NotEqual(awayFromZero.Pixels, cropped.Pixels);
    }

    [Fact]
    public void Adm_center_crop_of_an_image_already_that_size_is_the_identity()
    {
        var image = Gradient(16, 16);

        Assert.Equal(image.Pixels, ImageTransforms.AdmCenterCrop(image, 16).Pixels);
    }

    [Theory]
    [InlineData(300, 200, 384, 576, 384)]
    [InlineData(200, 301, 384, 384, 577)]
    [InlineData(384, 500, 384, 384, 500)]
    public void Resize_shorter_side_truncates_the_longer_side_like_torchvision(int width, int height, int target, int expectedWidth, int expectedHeight)
    {
        var resized = ImageTransforms.ResizeShorterSide(Gradient(width, height), target, PilFilter.Bicubic);

        Assert.Equal((expectedWidth, expectedHeight), (resized.Width, resized.Height));
    }

    [Fact]
    public void Stage1_crop_is_fixed_by_seed_epoch_and_index_and_covers_every_offset()
    {
        var image = Gradient(20, 16);
        var first = ImageTransforms.Stage1RandomCrop(image, 16, DataRandom.ForSample(7, 0, 3));
        var again = ImageTransforms.Stage1RandomCrop(image, 16, DataRandom.ForSample(7, 0, 3));
        Assert.Equal(first.Pixels, again.Pixels);
        Assert.Equal(16, first.Width);

        // 1.5·16 = 24 on the shorter side -> 30x24; every left offset 0..14 and top 0..8 must occur.
        var resized = ImageTransforms.ResizeShorterSide(image, 24, PilFilter.Bicubic);
        var seen = new HashSet<(int, int)>();
        for (var index = 0; index < 4000; index++)
        {
            var random = DataRandom.ForSample(7, 1, index);
            var top = random.NextInt(resized.Height - 16 + 1);
            var left = random.NextInt(resized.Width - 16 + 1);
            seen.Add((left, top));
        }
        Assert.Equal(15 * 9, seen.Count);
    }

    [Fact]
    public void Horizontal_flip_happens_about_half_the_time_and_mirrors_columns()
    {
        var image = Gradient(5, 3);
        var flips = 0;
        for (var index = 0; index < 2000; index++)
        {
            var result = ImageTransforms.RandomHorizontalFlip(image, DataRandom.ForSample(1, 0, index));
            if (!ReferenceEquals(result, image)) flips++;
        }
        Assert.InRange(flips, 900, 1100);

        var flipped = image.FlipHorizontal();
        Assert.Equal(image[0, 1, 2], flipped[4, 1, 2]);
        Assert.Equal(image.Pixels, flipped.FlipHorizontal().Pixels);
    }

    [Fact]
    public void To_tensor_is_channels_first_in_unit_range()
    {
        var image = RgbImage.Filled(3, 2, 255, 0, 51);

        using var tensor = image.ToTensor();

        Assert.Equal(new long[] { 3, 2, 3 }, tensor.shape);
        Assert.Equal(1f, tensor[0, 1, 2].item<float>());
        Assert.Equal(0f, tensor[1, 0, 0].item<float>());
        Assert.Equal(0.2f, tensor[2, 1, 1].item<float>(), 6);
    }

    internal static RgbImage Gradient(int width, int height)
    {
        var pixels = new byte[width * height * 3];
        for (var y = 0; y < height; y++)
        for (var x = 0; x < width; x++)
        {
            var at = (y * width + x) * 3;
            pixels[at] = (byte)(x * 255 / Math.Max(width - 1, 1));
            pixels[at + 1] = (byte)(y * 255 / Math.Max(height - 1, 1));
            pixels[at + 2] = (byte)((x * 37 + y * 91) % 256);
        }
        return new RgbImage(width, height, pixels);
    }
}

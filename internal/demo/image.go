package demo

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"sync"
)

// File formats of demo-file's "format" input.
const (
	// FormatRandom (the default) streams FilePayload(bytes).
	FormatRandom = "random"
	// FormatPNG streams FileImage(), for pages that show a streamed file.
	FormatPNG = "png"
)

// Size of demo-file's PNG image.
const (
	ImageWidth  = 320
	ImageHeight = 160
)

var fileImage = sync.OnceValue(func() []byte {
	img := image.NewNRGBA(image.Rect(0, 0, ImageWidth, ImageHeight))
	for y := range ImageHeight {
		for x := range ImageWidth {
			// A diagonal gradient with stripes: obviously an image, and
			// easy to tell apart from a broken one.
			stripe := uint8(0)
			if (x+y)/16%2 == 0 {
				stripe = 40
			}
			img.SetNRGBA(x, y, color.NRGBA{
				R: uint8(x * 255 / ImageWidth),
				G: uint8(y * 255 / ImageHeight),
				B: 160 + stripe,
				A: 255,
			})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		panic("demo: encode PNG: " + err.Error()) // an in-memory image cannot fail
	}
	return b.Bytes()
})

// FileImage returns demo-file's payload for {"format": "png"}: a
// ImageWidth×ImageHeight PNG, the same for every run. Like every PNG it is
// not valid UTF-8 (its signature starts with 0x89), so it travels as bytes.
func FileImage() []byte {
	return bytes.Clone(fileImage())
}

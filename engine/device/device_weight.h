// How the engine's tensor vocabulary (DType, Layout) maps to the kernels'
// and the device ABI's (WeightType, WeightLayout and their parameters): one
// mapping for the model, which binds its weights, and for the conversion
// onto a device, which asks the device to transform a weight in place.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/base/status.h"
#include "engine/device/device.h"
#include "engine/tensor/dtype.h"
#include "engine/tensor/layout.h"
#include "kernels/cpu/matmul/matmul.h"

namespace relayout {

// The kernels' element type of a weight; Unimplemented naming `name` for a
// dtype no kernel reads.
Result<kernels::WeightType> WeightTypeFor(const std::string& name, DType dtype);

// The matmul view of a 2-D weight in `layout` at `data`: Unimplemented
// naming the tensor for a dtype no matmul reads, the transposed layout, or
// a non-2-D shape. Whether a device runs it is the device's to say
// (Device::MatmulSupported).
Result<DeviceMatmulWeight> MatmulWeightFor(const std::string& name, DType dtype,
                                           const std::vector<int64_t>& shape, const Layout& layout,
                                           DeviceRef data);

}  // namespace relayout

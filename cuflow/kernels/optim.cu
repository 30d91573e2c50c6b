// optim.cu — multi-tensor optimizer updates: one launch updates every variable of a model (SGD, Adam/AdamW,
// RMSprop, Adagrad), in place, with the formulas of cuflow/optim/*.py (their update() is the reference).
//
// The tensor list: the launcher (fused.py) builds, once per optimizer and variable set, a device table of
// TABLE_COLUMNS long longs per variable — its size, then the addresses of the variable and of up to MAX_SLOTS slot
// arrays (0 where an optimizer keeps fewer) — and a chunk table: (variable index, first element) for every chunk of
// `chunk` elements. Only the gradients' addresses change from step to step: `grads` (uploaded when they changed).
// Tiling: block c (grid-stride over the chunks) walks its chunk with OPTIM_THREADS threads, neighbouring threads on
// neighbouring elements, so every array is read and written once, coalesced: the update is bound by memory
// bandwidth, and small variables (a bias of 10) cost one partly idle block, not a launch of their own.
// Scalars that change with the step (learning rate, Adam's bias corrections) are kernel arguments, so a step needs
// no device buffer write and no host sync. Every scalar arrives in T already rounded as NumPy rounds the Python
// float in the reference (float32(lr) * g), so both devices evaluate the same expressions in the same order.
// Decoupled weight decay (Keras 3) comes first when `decay_on`: var -= var * decay, decay = weight_decay * lr.

#define OPTIM_THREADS 256
#define TABLE_COLUMNS 5  // size, variable, slot 0, slot 1, slot 2 (compile.py's and fused.py's TABLE_COLUMNS)

// One variable of the tensor list, as the update body sees it.
template <typename T>
struct TensorRef {
    T* var;
    const T* grad;
    T* slot[TABLE_COLUMNS - 2];
};

// Calls body(tensor, i) for every element i of every variable of the tensor list, chunk by chunk.
template <typename T, typename Body>
__device__ void for_each_element(const long long* __restrict__ table, const long long* __restrict__ chunks,
                                 int n_chunks, int chunk, const long long* __restrict__ grads, Body body)
{
    for (int c = blockIdx.x; c < n_chunks; c += gridDim.x) {
        const long long tensor = chunks[2 * c];
        const long long first = chunks[2 * c + 1];
        const long long* row = table + tensor * TABLE_COLUMNS;
        const long long size = row[0];
        const long long end = first + chunk < size ? first + chunk : size;
        TensorRef<T> t;
        t.var = reinterpret_cast<T*>(row[1]);
        t.grad = reinterpret_cast<const T*>(grads[tensor]);
        for (int s = 0; s < TABLE_COLUMNS - 2; ++s) {
            t.slot[s] = reinterpret_cast<T*>(row[2 + s]);
        }
        for (long long i = first + threadIdx.x; i < end; i += blockDim.x) {
            body(t, i);
        }
    }
}

#define TENSOR_LIST_PARAMS                                                                                      \
    const long long *__restrict__ table, const long long *__restrict__ chunks, int n_chunks, int chunk,         \
        const long long *__restrict__ grads, int decay_on, T decay
#define TENSOR_LIST table, chunks, n_chunks, chunk, grads

template <typename T>
__device__ T decayed(T var, int decay_on, T decay)
{
    return decay_on ? var - var * decay : var;
}

// SGD: var -= lr * g; with momentum m = momentum * m - lr * g, then var += m (or, Nesterov,
// var += momentum * m - lr * g). Slot 0: momentum.
template <typename T>
__global__ void __launch_bounds__(OPTIM_THREADS) sgd_update(TENSOR_LIST_PARAMS, T lr, T momentum, int use_momentum,
                                                            int nesterov)
{
    for_each_element<T>(TENSOR_LIST, [&](const TensorRef<T>& t, long long i) {
        const T g = t.grad[i];
        T var = decayed(t.var[i], decay_on, decay);
        if (!use_momentum) {
            var -= lr * g;
        } else {
            T m = t.slot[0][i] * momentum;
            m -= lr * g;
            t.slot[0][i] = m;
            var += nesterov ? momentum * m - lr * g : m;
        }
        t.var[i] = var;
    });
}

// Adam / AdamW: m += (g - m) (1 - beta_1); v += (g^2 - v) (1 - beta_2); with AMSGrad v_hat = max(v_hat, v) takes
// v's place; var -= alpha m / (sqrt(v) + epsilon), alpha = lr sqrt(1 - beta_2^t) / (1 - beta_1^t) from the host.
// Slots 0, 1, 2: m, v, v_hat.
template <typename T>
__global__ void __launch_bounds__(OPTIM_THREADS) adam_update(TENSOR_LIST_PARAMS, T alpha, T one_minus_beta_1,
                                                             T one_minus_beta_2, T epsilon, int amsgrad)
{
    for_each_element<T>(TENSOR_LIST, [&](const TensorRef<T>& t, long long i) {
        const T g = t.grad[i];
        const T var = decayed(t.var[i], decay_on, decay);
        T m = t.slot[0][i];
        T v = t.slot[1][i];
        m += (g - m) * one_minus_beta_1;
        v += (g * g - v) * one_minus_beta_2;
        t.slot[0][i] = m;
        t.slot[1][i] = v;
        if (amsgrad) {
            const T v_hat = t.slot[2][i];
            v = (v > v_hat || v != v) ? v : v_hat;  // numpy.maximum: NaN wins
            t.slot[2][i] = v;
        }
        t.var[i] = var - alpha * m / (sqrt(v) + epsilon);
    });
}

// RMSprop: velocity = rho velocity + (1 - rho) g^2; centered: average = rho average + (1 - rho) g and the
// denominator loses average^2; increment = lr g / sqrt(denominator + epsilon); with momentum
// mom = momentum mom + increment, var -= mom, else var -= increment.
// Slots: velocity, then average_grad (centered), then momentum (momentum > 0), packed in that order.
template <typename T>
__global__ void __launch_bounds__(OPTIM_THREADS) rmsprop_update(TENSOR_LIST_PARAMS, T lr, T rho, T one_minus_rho,
                                                                T epsilon, T momentum, int centered,
                                                                int use_momentum)
{
    for_each_element<T>(TENSOR_LIST, [&](const TensorRef<T>& t, long long i) {
        const T g = t.grad[i];
        T var = decayed(t.var[i], decay_on, decay);
        T velocity = t.slot[0][i] * rho;
        velocity += one_minus_rho * g * g;
        t.slot[0][i] = velocity;
        T denominator;
        if (centered) {
            T average = t.slot[1][i] * rho;
            average += one_minus_rho * g;
            t.slot[1][i] = average;
            denominator = velocity - average * average + epsilon;
        } else {
            denominator = velocity + epsilon;
        }
        const T increment = lr * g / sqrt(denominator);
        if (use_momentum) {
            T* slot = centered ? t.slot[2] : t.slot[1];  // not t.slot[expr]: that would put t in local memory
            const T mom = slot[i] * momentum + increment;
            slot[i] = mom;
            var -= mom;
        } else {
            var -= increment;
        }
        t.var[i] = var;
    });
}

// Adagrad: accumulator += g^2; var -= lr g / sqrt(accumulator + epsilon). Slot 0: accumulator.
template <typename T>
__global__ void __launch_bounds__(OPTIM_THREADS) adagrad_update(TENSOR_LIST_PARAMS, T lr, T epsilon)
{
    for_each_element<T>(TENSOR_LIST, [&](const TensorRef<T>& t, long long i) {
        const T g = t.grad[i];
        const T var = decayed(t.var[i], decay_on, decay);
        const T accumulator = t.slot[0][i] + g * g;
        t.slot[0][i] = accumulator;
        t.var[i] = var - lr * g / sqrt(accumulator + epsilon);
    });
}

import neostandard from 'neostandard'

export default neostandard({
  ts: true,
  filesTs: ['**/*.mts'],
  ignores: ['dist/**', 'coverage/**', '.tap/**', 'benchmarks/node_modules/**', 'benchmarks/results/**']
})

// A recording stand-in for Jenkins' declarative pipeline DSL: runs a Jenkinsfile with real
// Groovy, executes every block — a stage's steps are skipped, as in Jenkins, when its
// `when { expression { … } }` is false — and prints what it saw as JSON.
// Usage: groovy recorder.groovy JENKINSFILE PARAMS_JSON
import groovy.json.JsonOutput
import groovy.json.JsonSlurper
import org.codehaus.groovy.control.CompilerConfiguration

class Recorder {
    List events = []
    List path = []
    Map params
    Map env = [WORKSPACE: '/ws', JOB_NAME: 'kiln-weekly', BUILD_NUMBER: '7']
    boolean skipStage = false

    def methodMissing(String name, Object argsObj) {
        Object[] args = argsObj as Object[]
        def closure = args && args[-1] instanceof Closure ? args[-1] : null
        def plain = closure ? args[0..<(args.length - 1)] : args as List
        events << [call: name, path: path.join('/'), args: plain.collect { render(it) }]
        if (name == 'sh') {
            def spec = plain[0]
            if (spec instanceof Map && spec.returnStdout) {
                return 'base\napp\n'
            }
            return 0
        }
        if (name == 'stage') {
            skipStage = false
        }
        if (name == 'expression' && closure) {
            closure.delegate = this
            skipStage = !closure.call()
            return null
        }
        if (name == 'steps' && skipStage) {
            events[-1].skipped = true
            return null
        }
        if (closure) {
            path << (name == 'stage' ? "stage:${plain[0]}" : name)
            closure.delegate = this
            closure.resolveStrategy = Closure.DELEGATE_FIRST
            def result = closure.call()
            path.remove(path.size() - 1)
            return result
        }
        return null
    }

    def render(value) {
        if (value instanceof GString) return value.toString()
        if (value instanceof Map) return value.collectEntries { k, v -> [(k.toString()): render(v)] }
        if (value instanceof List) return value.collect { render(it) }
        if (value instanceof Closure || value == null || value instanceof Number || value instanceof Boolean) {
            return value instanceof Closure ? '<closure>' : value
        }
        return value.toString()
    }

    def propertyMissing(String name) {
        if (name == 'params') return params
        if (name == 'env') return env
        return name  // bare words such as `always`
    }
}

def file = new File(args[0])
def params = new JsonSlurper().parseText(args[1])
def recorder = new Recorder(params: params)
def config = new CompilerConfiguration()
config.scriptBaseClass = DelegatingScript.class.name
def shell = new GroovyShell(new Binding(), config)
def script = (DelegatingScript) shell.parse(file)
script.setDelegate(recorder)
script.run()
println JsonOutput.toJson(recorder.events)

# Evaluates a rendered Homebrew formula without Homebrew: a minimal stand-in for the parts of
# its DSL the formula uses, with OS and CPU chosen on the command line. Prints JSON: what the
# class body declared on that platform and, with a stage directory, what `install` put where
# and whether the `test do` block passed against the installed binary.
#
#   ruby formula-shim.rb FORMULA mac|linux arm|intel [STAGE PREFIX]
require "json"
require "fileutils"
require "pathname"

FORMULA_FILE, WANT_OS, WANT_CPU, STAGE, PREFIX = ARGV

module OS
  def self.mac? = WANT_OS == "mac"
  def self.linux? = WANT_OS == "linux"
end

module Hardware
  module CPU
    def self.arm? = WANT_CPU == "arm"
    def self.intel? = WANT_CPU == "intel"
  end
end

class AssertionFailed < StandardError; end

# Homebrew adds `install` to Pathname; this one copies from the stage directory and renames.
class Pathname
  def install(mapping)
    mapping.each do |from, to|
      FileUtils.mkdir_p(self)
      FileUtils.cp(File.join(STAGE, from), join(to))
      File.chmod(0o755, join(to))
    end
  end
end

class Formula
  class << self
    attr_reader :declared, :test_block

    def inherited(subclass)
      super
      subclass.instance_variable_set(:@declared, { "urls" => [], "sha256s" => [], "depends_on" => [] })
    end

    def desc(text) = @declared["desc"] = text
    def homepage(text) = @declared["homepage"] = text
    def license(text) = @declared["license"] = text
    def url(text, **) = @declared["urls"] << text
    def sha256(text) = @declared["sha256s"] << text
    def depends_on(name) = @declared["depends_on"] << name

    def version(text = nil)
      @declared["version"] = text unless text.nil?
      @declared["version"]
    end

    def on_macos = (yield if OS.mac?)
    def on_linux = (yield if OS.linux?)
    def on_arm = (yield if Hardware::CPU.arm?)
    def on_intel = (yield if Hardware::CPU.intel?)
    def test(&block) = @test_block = block
  end

  attr_reader :completions

  def version = self.class.version
  def bin = Pathname.new(PREFIX).join("bin")

  # Homebrew runs the executable with each shell's name and writes where each shell looks.
  def generate_completions_from_executable(executable, *args)
    @completions = {}
    { "bash" => "etc/bash_completion.d/smolvm", "zsh" => "share/zsh/site-functions/_smolvm", "fish" => "share/fish/vendor_completions.d/smolvm.fish" }.each do |shell, path|
      output = IO.popen([executable.to_s, *args, shell], &:read)
      raise AssertionFailed, "#{executable} #{args.join(" ")} #{shell} failed" unless $?.success?
      file = Pathname.new(PREFIX).join(path)
      FileUtils.mkdir_p(file.dirname)
      file.write(output)
      @completions[shell] = file.to_s
    end
  end

  def shell_output(command, result = 0)
    output = `#{command}`
    assert_equal(result, $?.exitstatus)
    output
  end

  def pipe_output(command, input = nil, result = nil)
    output = IO.popen(command, "r+") { |pipe| pipe.write(input) if input; pipe.close_write; pipe.read }
    assert_equal(result, $?.exitstatus) unless result.nil?
    output
  end

  def assert_match(pattern, text)
    raise AssertionFailed, "#{text.inspect} does not match #{pattern.inspect}" unless text.match?(pattern)
  end

  def assert_equal(expected, actual)
    raise AssertionFailed, "expected #{expected.inspect}, got #{actual.inspect}" unless expected == actual
  end
end

load FORMULA_FILE
klass = Object.const_get(:Smolvm)
result = { "class" => klass.name, "superclass" => klass.superclass.name, "declared" => klass.declared, "has_test" => !klass.test_block.nil? }
if STAGE
  formula = klass.new
  formula.install
  result["installed"] = Dir.glob("**/*", base: PREFIX).sort
  result["completions"] = formula.completions
  begin
    formula.instance_eval(&klass.test_block)
    result["test"] = "passed"
  rescue AssertionFailed => e
    result["test"] = "failed: #{e.message}"
  end
end
puts JSON.generate(result)
